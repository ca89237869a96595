"""A tiny random BERT reward model and the texts the serving tests score with it."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from tacit.core.settings import TacitSettings

# Several batches out of a handful of texts; float32 so rewards equal a direct transformers computation.
SETTINGS = TacitSettings(serve_batch_size=2, precision="float32", require_api_keys=False)  # keys: test_gateway.py
TACIT_SPEC = {"layout": "compact", "levels": [1, 2, 4, 5], "head": "coral", "max_length": 64}
CHAT = {
    "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help"}],
    "query": "Write a haiku about rain.",
    "response": "Soft rain on the roof / the gutters hum a low song / the street shines like glass",
}
TEXTS = ["short", "a somewhat longer text to score", "mid length text", "x " * 40, "thanks, that fixed it"]


def save_tiny_checkpoint(directory: Path, num_labels: int, spec: dict | None) -> Path:
    """Large random weights, so that different texts get clearly different rewards."""
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_labels=num_labels,
        initializer_range=0.5,
    )
    if spec is not None:
        config.tacit = spec
    BertForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(SETTINGS.resolved_base_model()).save_pretrained(directory)
    return directory


def direct_rewards(checkpoint: Path, texts: list[str]) -> torch.Tensor:
    """Plain transformers, one text at a time: no batching, padding or sorting to get wrong."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        logits = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in texts])
    return 1 + torch.sigmoid(logits).sum(dim=-1)


def tiny_scoring_app(directory: Path, settings: TacitSettings, keys=None):
    """The scoring service on a tiny checkpoint written under ``directory``; with ``keys`` (a
    ``KeyVerifier``) scoring needs an API key."""
    from tacit.model.scoring import RewardScorer
    from tacit.serving.app import create_app
    from tacit.serving.model import ServedModel

    scorer = RewardScorer.load(save_tiny_checkpoint(directory / "model", 3, TACIT_SPEC), settings)
    return create_app(ServedModel(scorer, 1), settings, keys=keys)
