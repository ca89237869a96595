"""Fitting the embedding labeler's classifier: L2-regularised multinomial logistic regression.

The features are fixed (the encoder is frozen), so this is a convex problem that L-BFGS solves exactly in
a second on CPU; no learning rate or epoch count to tune. The fit is checked on a held-out fifth of the
items first (agreement with the given labels, per level), then redone on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tacit.labels.datasets import LabeledCandidate
from tacit.labels.embedding import LEVELS, EmbeddingHead, candidate_features
from tacit.labels.encoder import SentenceEncoder

L2 = 1e-4  # per item: enough to keep weights finite for levels with a handful of examples
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class FitReport:
    """How the classifier fitted on four fifths agrees with the given labels on the last fifth."""

    train_items: int
    holdout_items: int
    accuracy: float
    recall: dict[int, float]  # per level: share of its held-out items predicted as that level
    support: dict[int, int]


def fit_head(features: torch.Tensor, levels: torch.Tensor, fitted_on: str) -> EmbeddingHead:
    """``levels`` are 0-based class indexes into :data:`LEVELS`."""
    linear = torch.nn.Linear(features.shape[1], len(LEVELS))
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(linear(features), levels) + L2 * linear.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    return EmbeddingHead(linear.weight.detach().clone(), linear.bias.detach().clone(), fitted_on)


def fit(encoder: SentenceEncoder, items: Sequence[LabeledCandidate], fitted_on: str,
        seed: int = 0) -> tuple[EmbeddingHead, FitReport]:
    features = candidate_features(encoder, [item.candidate for item in items])
    levels = torch.tensor([LEVELS.index(item.level) for item in items])
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))
    cut = int(len(items) * (1 - HOLDOUT_FRACTION))
    train, holdout = order[:cut], order[cut:]
    trial = fit_head(features[train], levels[train], fitted_on)
    predicted = trial.probabilities(features[holdout]).argmax(dim=-1)
    report = _report(predicted, levels[holdout], len(train))
    return fit_head(features, levels, fitted_on), report


def _report(predicted: torch.Tensor, truth: torch.Tensor, train_items: int) -> FitReport:
    recall, support = {}, {}
    for index, level in enumerate(LEVELS):
        mask = truth == index
        support[int(level)] = int(mask.sum())
        if mask.any():
            recall[int(level)] = float((predicted[mask] == index).float().mean())
    accuracy = float((predicted == truth).float().mean()) if len(truth) else float("nan")
    return FitReport(train_items, len(truth), accuracy, recall, support)

