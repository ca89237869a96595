"""``TACIT_SERVE_QUANTIZE=int8``: int8 Linear layers, rewards close to float32, and a swap still passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tacit.model.scoring import CheckpointError, RewardScorer, canary_rewards
from tacit.serving.model import ServedModel, load_scorer
from tacit.serving.swap import CANARY_TOLERANCE, CanaryError, check_canary
from tests.helpers.serving import SETTINGS, TACIT_SPEC, TEXTS, save_tiny_checkpoint

INT8 = SETTINGS.model_copy(update={"serve_quantize": "int8"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("quantize"), 3, TACIT_SPEC)


@pytest.fixture(scope="module")
def int8(checkpoint: Path) -> RewardScorer:
    return load_scorer(checkpoint, INT8)


def test_the_service_loads_int8_linear_layers_when_asked(checkpoint: Path, int8: RewardScorer) -> None:
    assert int8.quantize == "int8"
    assert isinstance(int8.model.classifier, torch.ao.nn.quantized.dynamic.Linear)
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    assert isinstance(load_scorer(checkpoint, SETTINGS).model.classifier, torch.nn.Linear)


def test_int8_rewards_are_close_to_float32_but_not_equal(checkpoint: Path, int8: RewardScorer) -> None:
    exact = RewardScorer.load(checkpoint, SETTINGS).score_texts(TEXTS).rewards
    quantized = int8.score_texts(TEXTS).rewards

    assert quantized != exact
    assert quantized == pytest.approx(exact, abs=CANARY_TOLERANCE["int8"])


def test_an_int8_model_passes_the_canary_recorded_in_float32(checkpoint: Path, int8: RewardScorer) -> None:
    recorded = canary_rewards(RewardScorer.load(checkpoint, SETTINGS))

    check_canary(ServedModel(int8, 1, {"canary_rewards": recorded}))
    with pytest.raises(CanaryError, match="by more than 0.3"):
        check_canary(ServedModel(int8, 1, {"canary_rewards": [r + 0.5 for r in recorded]}))


def test_int8_is_refused_on_a_gpu(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tacit.model.scoring.default_device", lambda: torch.device("cuda"))

    with pytest.raises(CheckpointError, match="CPUs only"):
        load_scorer(checkpoint, INT8)
