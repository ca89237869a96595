"""What the scorer reads from a checkpoint, and decoder checkpoints such as WildReward's Qwen3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    Qwen3Config,
    Qwen3ForSequenceClassification,
)

from tacit.core.settings import TacitSettings
from tacit.model.scoring import CheckpointError, CheckpointSpec, RewardScorer

SETTINGS = TacitSettings(max_length=128, serve_batch_size=4, precision="float32")  # exact numbers


def test_spec_reads_the_tacit_attribute() -> None:
    config = BertConfig(num_labels=3)
    config.tacit = {"layout": "compact", "levels": [1, 2, 4, 5], "head": "coral", "max_length": 64}

    assert CheckpointSpec.from_config(config, 256) == CheckpointSpec("compact", (1, 2, 4, 5), 64)


def test_spec_without_the_attribute_is_wildreward_on_levels_one_to_k() -> None:
    assert CheckpointSpec.from_config(BertConfig(num_labels=4), 256) == CheckpointSpec(
        "wildreward", (1, 2, 3, 4, 5), 256
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"levels": [1, 2, 3, 4, 5]}, "K-1"), ({"layout": "chatml"}, "compact, wildreward")],
)
def test_spec_refuses_what_it_cannot_serve(spec: dict, message: str) -> None:
    config = BertConfig(num_labels=3)
    config.tacit = spec

    with pytest.raises(CheckpointError, match=message):
        CheckpointSpec.from_config(config, 256)


def test_load_says_what_a_checkpoint_is(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        RewardScorer.load(tmp_path, SETTINGS)


@pytest.mark.parametrize("damaged", ["config.json", "model.safetensors", "tokenizer.json"])
def test_a_damaged_checkpoint_is_a_clear_error_not_a_traceback(tmp_path: Path, damaged: str) -> None:
    from tests.helpers.serving import TACIT_SPEC, save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tmp_path, 3, TACIT_SPEC)
    (checkpoint / damaged).write_bytes(b"\x00garbage{")

    with pytest.raises(CheckpointError, match=f"{checkpoint} could not be loaded"):
        RewardScorer.load(checkpoint, SETTINGS)


def test_decoder_checkpoint_without_pad_id_scores_batches(tmp_path: Path) -> None:
    """Qwen3 classifiers pool the last non-pad token, so a batch needs a pad id the checkpoint may lack."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, num_labels=4, pad_token_id=None, initializer_range=0.5,
    )
    Qwen3ForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(SETTINGS.resolved_base_model()).save_pretrained(tmp_path)
    scorer = RewardScorer.load(tmp_path, SETTINGS)
    texts = ["short", "a noticeably longer text than the first", "middle sized text"]

    batched = scorer.score_texts(texts).rewards
    one_by_one = [scorer.score_texts([text]).rewards[0] for text in texts]

    assert batched == pytest.approx(one_by_one, abs=1e-5)


def test_auto_precision_stays_close_to_float32(tmp_path: Path) -> None:
    """Where the hardware computes bf16 natively, ``auto`` uses it; the rewards must barely move."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        num_labels=3)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(SETTINGS.resolved_base_model()).save_pretrained(tmp_path)
    texts = ["User: hi\nAssistant: Hello!", "User: fix it\nAssistant: " + "Here is the fix. " * 20]
    exact = RewardScorer.load(tmp_path, SETTINGS).score_texts(texts).rewards
    fast = RewardScorer.load(tmp_path, SETTINGS.model_copy(update={"precision": "auto"})).score_texts(texts)
    assert fast.rewards == pytest.approx(exact, abs=0.05)


def test_bf16_scoring_keeps_the_head_in_float32_so_close_rewards_do_not_tie(tmp_path) -> None:
    """A neutral-dominated model gives similar replies rewards a few thousandths apart; bf16 logits (8 bits
    of mantissa) rounded most of them to the same value, and a tie counts as a miss in pairwise accuracy."""
    import pytest
    import torch

    from tacit.core.settings import TacitSettings
    from tacit.model.hardware import compute_dtype, default_device
    from tacit.model.ordinal import classification_layer
    from tacit.model.scoring import RewardScorer
    from tests.helpers.serving import TACIT_SPEC, save_tiny_checkpoint

    if compute_dtype(default_device(), "auto") == torch.float32:
        pytest.skip("this machine computes in float32 anyway")
    checkpoint = save_tiny_checkpoint(tmp_path, 3, TACIT_SPEC)
    texts = [f"User: question {i}\nAssistant: answer number {i}" for i in range(64)]

    reduced = RewardScorer.load(checkpoint, TacitSettings(precision="auto"))

    assert classification_layer(reduced.model)[1].weight.dtype == torch.float32
    assert next(reduced.model.base_model.parameters()).dtype == torch.bfloat16  # the backbone stays reduced
    rewards = reduced.score_texts(texts).rewards
    assert len(set(rewards)) == len(texts)  # no two replies tied by rounding
