"""Ordinal scoring shared by trainer and scoring service.

A model with K-1 threshold logits predicts P(y > k) for k = 1..K-1. The reward is the expected level
1 + sum(sigmoid(logits)) (WildReward), and the per-level probabilities are differences of the cumulative
ones. With a rank-consistent (CORAL) head the cumulative probabilities never increase with k, so the level
probabilities are never negative; for independent heads they are clipped.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


def rewards_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """(batch, K-1) threshold logits -> (batch,) expected level on the 1..K scale."""
    return 1.0 + torch.sigmoid(logits.float()).sum(dim=-1)


def level_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(batch, K-1) threshold logits -> (batch, K) probability of each level."""
    above = torch.sigmoid(logits.float())
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    cumulative = torch.cat([ones, above, zeros], dim=-1)  # P(y > k) for k = 0..K
    return (cumulative[:, :-1] - cumulative[:, 1:]).clamp(min=0.0)


def classification_layer(model: PreTrainedModel) -> tuple[str, nn.Linear]:
    """The Linear that emits the threshold logits: ``classifier``, ``score``... by architecture."""
    layers = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == model.config.num_labels
    ]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Linear layer with {model.config.num_labels} outputs")
    return layers[-1]
