"""The precision policy: bf16 only where the hardware computes it natively, float32 on request."""

import contextlib

import pytest
import torch

from tacit.model import hardware

CPU = torch.device("cpu")


def test_float32_is_always_exact():
    assert hardware.compute_dtype(CPU, "float32") is torch.float32
    assert isinstance(hardware.autocast(CPU, "float32"), contextlib.nullcontext)


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_uses_bf16_on_a_cpu_only_when_it_is_native(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert hardware.compute_dtype(CPU, "auto") is expected
