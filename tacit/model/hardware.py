"""Where models run and in which precision, for training and scoring alike.

``auto`` computes in bfloat16 wherever the hardware does so natively: CUDA GPUs (fp16 on GPUs older than
Ampere) and CPUs with AVX512-BF16 or AMX, where ``bench/precision.py`` measured 2.8x faster scoring and 1.9x faster
training than float32 on this project's 2-core machine (docs: benchmarks). ``float32`` is exact and everywhere.
"""

from __future__ import annotations

import contextlib

import torch

from tacit.core.settings import Precision


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_native_bf16() -> bool:
    """oneDNN's own check; without native support bf16 is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compute_dtype(device: torch.device, precision: Precision) -> torch.dtype:
    if precision == "float32":
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed precision for training: weights and optimizer stay float32, matrix products run reduced."""
    dtype = compute_dtype(device, precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
