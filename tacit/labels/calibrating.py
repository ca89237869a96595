"""Fitting the calibrated labeler on human judgments: classifier, calibration map and thresholds.

Three steps, all scikit-learn, on the frozen MiniLM features of (reply, follow-up):

1. **Out-of-fold predictions.** Multinomial logistic regression is fitted on four fifths of the items and
   predicts the fifth, five times (folds stratified by source and level), so every item has logits from a
   classifier that never saw it.
2. **Calibration and thresholds** are fitted on those out-of-fold predictions: temperature scaling (the
   divisor of the logits that minimises the log-loss) or isotonic regression per level; then the
   thresholds on P(level <= 2) and P(level >= 4) that maximise the F1 of each side.
3. **The classifier** is refitted on all items; the map and thresholds of step 2 go with it. This is what
   ``CalibratedClassifierCV(ensemble=False)`` does, with the thresholds added.

Sources are weighted equally (each source's items share the same total weight), so a large set does not
decide alone what "dissatisfied" sounds like. Where the humans of a source are silent about a side of the
scale (EURTAD and DBDC3 rate errors only), the rules may add weak labels: a follow-up the humans call
neutral and the rules call positive (4, 5) takes the rules' level, and one the humans call a correction
and the rules an explicit rejection becomes 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from tacit.core.domain import SatisfactionLevel
from tacit.labels.base import Labeler
from tacit.labels.calibrated import (
    DISSATISFIED,
    ISOTONIC,
    POSITIVE,
    TEMPERATURE,
    CalibratedHead,
    Calibration,
    Thresholds,
    softmax,
)
from tacit.labels.datasets import LabeledCandidate, load_items
from tacit.labels.embedding import LEVELS, candidate_features
from tacit.labels.encoder import SentenceEncoder
from tacit.labels.evaluation import READERS

ABSENT_LOGIT = -30.0  # a level no training item has: probability about 1e-13
NEVER = 1.01  # threshold of a side no training item has: never reached


@dataclass(frozen=True)
class CalibratedFitConfig:
    """The knobs of :func:`fit_calibrated`; the defaults are what the shipped head was fitted with."""

    calibration: str = ISOTONIC  # or TEMPERATURE
    regularization: float = 1.0  # LogisticRegression's C (inverse L2 strength)
    folds: int = 5
    balance_sources: bool = True
    weak_rules: bool = True
    seed: int = 0


@dataclass(frozen=True)
class CalibratedFitReport:
    items: int
    per_source: dict[str, int]
    level_counts: dict[int, int]  # after weak labels
    weak_labels: int
    out_of_fold_log_loss: float  # of the calibrated probabilities (the calibration map saw these items)
    out_of_fold_auc: float | None  # levels 1-2 vs the rest, by P(<=2) of classifiers that never saw the item
    out_of_fold: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, len(LEVELS))))
    fitted_levels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=int))  # weak ones too


def weak_levels(levels: np.ndarray, rules_levels: np.ndarray) -> np.ndarray:
    """Human levels with the rules' where the humans are silent (module docstring); 1-5 in and out."""
    out = levels.copy()
    if not (levels >= 4).any():
        out[(levels == 3) & (rules_levels >= 4)] = rules_levels[(levels == 3) & (rules_levels >= 4)]
    if not (levels == 1).any():
        out[(levels == 2) & (rules_levels == 1)] = 1
    return out


def source_weights(sources: Sequence[str], balance: bool) -> np.ndarray:
    _, inverse, counts = np.unique(np.asarray(sources), return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse] if balance else np.ones(len(sources))
    return weights / weights.mean()


def fit_linear(features: np.ndarray, levels: np.ndarray, weights: np.ndarray,
               config: CalibratedFitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``(5, dim)`` and bias ``(5,)`` of multinomial logistic regression; ``levels`` are 1-5.

    Levels without items get zero weight and a very low bias; with two levels present the binary model's
    logit ``z`` is split as ``(-z/2, z/2)``, the same probabilities under the softmax.
    """
    model = LogisticRegression(C=config.regularization, max_iter=3000)
    model.fit(features, levels, sample_weight=weights)
    weight = np.zeros((len(LEVELS), features.shape[1]))
    bias = np.full(len(LEVELS), ABSENT_LOGIT)
    present = model.classes_.astype(int) - 1
    if len(present) == 2:
        coef = np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
        intercept = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
    else:
        coef, intercept = model.coef_, model.intercept_
    weight[present], bias[present] = coef, intercept
    return weight, bias


def out_of_fold_logits(features: np.ndarray, levels: np.ndarray, sources: Sequence[str], weights: np.ndarray,
                       config: CalibratedFitConfig) -> np.ndarray:
    strata = np.char.add(np.asarray(sources, dtype=str), levels.astype(str)).astype(object)
    # A stratum smaller than the folds cannot be spread over them: its items are stratified by level only,
    # and a level that is still too rare joins one stratum of all such items.
    for fallback in (levels.astype(str).astype(object), np.full(len(levels), "rare", dtype=object)):
        names, counts = np.unique(strata, return_counts=True)
        small = np.isin(strata, names[counts < config.folds])
        strata[small] = fallback[small]
    names, counts = np.unique(strata, return_counts=True)
    strata[np.isin(strata, names[counts < config.folds])] = names[np.argmax(counts)]
    logits = np.zeros((len(levels), len(LEVELS)))
    splitter = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    for train, held in splitter.split(features, strata):
        weight, bias = fit_linear(features[train], levels[train], weights[train], config)
        logits[held] = features[held] @ weight.T + bias
    return logits


def fit_calibration(logits: np.ndarray, levels: np.ndarray, weights: np.ndarray, method: str,
                    fitted_on: str) -> Calibration:
    if method == TEMPERATURE:
        onehot = np.eye(len(LEVELS))[levels - 1]

        def log_loss(temperature: float) -> float:
            probabilities = softmax(logits / temperature)
            return float(-(weights * np.log((probabilities * onehot).sum(axis=1) + 1e-12)).mean())

        temperature = float(minimize_scalar(log_loss, bounds=(0.05, 20.0), method="bounded").x)
        return Calibration(TEMPERATURE, fitted_on, temperature=temperature)
    raw = softmax(logits)
    maps = []
    for k in range(len(LEVELS)):
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        isotonic.fit(raw[:, k], (levels == k + 1).astype(float), sample_weight=weights)
        maps.append((isotonic.X_thresholds_.astype(np.float64), isotonic.y_thresholds_.astype(np.float64)))
    return Calibration(ISOTONIC, fitted_on, isotonic=tuple(maps))


def best_threshold(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """The score at which the F1 of ``truth`` is highest (NEVER when ``truth`` has no positives)."""
    if not truth.any():
        return NEVER
    precision, recall, thresholds = precision_recall_curve(truth, scores, sample_weight=weights)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def fit_thresholds(probabilities: np.ndarray, levels: np.ndarray, weights: np.ndarray) -> Thresholds:
    return Thresholds(
        best_threshold(levels <= 2, probabilities[:, DISSATISFIED].sum(axis=1), weights),
        best_threshold(levels >= 4, probabilities[:, POSITIVE].sum(axis=1), weights),
    )


def fit_calibrated(features: np.ndarray, levels: np.ndarray, sources: Sequence[str], fitted_on: str,
                   config: CalibratedFitConfig | None = None,
                   rules_levels: np.ndarray | None = None) -> tuple[CalibratedHead, CalibratedFitReport]:
    """A calibrated head from ``features`` (n, dim), human ``levels`` (1-5) and each item's source name.

    ``rules_levels`` (1-5), when given and ``config.weak_rules``, fill in the sides a source is silent on.
    """
    config = config or CalibratedFitConfig()
    levels = np.asarray(levels, dtype=int)
    sources = np.asarray(sources, dtype=str)
    original = levels
    if config.weak_rules and rules_levels is not None:
        levels = levels.copy()
        for source in np.unique(sources):
            mask = sources == source
            levels[mask] = weak_levels(original[mask], np.asarray(rules_levels)[mask])
    weights = source_weights(sources, config.balance_sources)
    logits = out_of_fold_logits(features, levels, sources, weights, config)
    calibrated_on = f"{config.folds}-fold out-of-fold predictions on {fitted_on}"
    calibration = fit_calibration(logits, levels, weights, config.calibration, calibrated_on)
    probabilities = calibration.apply(logits)
    thresholds = fit_thresholds(probabilities, levels, weights)
    weight, bias = fit_linear(features, levels, weights, config)
    head = CalibratedHead(weight.astype(np.float32), bias.astype(np.float32), calibration, thresholds, fitted_on)
    picked = probabilities[np.arange(len(levels)), levels - 1]
    report = CalibratedFitReport(
        items=len(levels), per_source={str(s): int((sources == s).sum()) for s in np.unique(sources)},
        level_counts={int(v): int((levels == int(v)).sum()) for v in SatisfactionLevel},
        weak_labels=int((levels != original).sum()),
        out_of_fold_log_loss=float(-(weights * np.log(picked + 1e-12)).mean()),
        out_of_fold_auc=_auc(levels <= 2, probabilities[:, DISSATISFIED].sum(axis=1), weights),
        out_of_fold=probabilities, fitted_levels=levels,
    )
    return head, report


def _auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float | None:
    return float(roc_auc_score(truth, scores, sample_weight=weights)) if len(set(truth.tolist())) == 2 else None


def load_source(path: Path, format_name: str, teacher: Labeler) -> tuple[list[LabeledCandidate], str]:
    """Items of a human set (``eurtad``, ``dbdc3``, ``feedbackqa``, ``labeled``) or a teacher-labeled log."""
    if format_name in READERS:
        items = READERS[format_name](path)
        return items, (format_name if format_name != "labeled" else path.name)
    return load_items(path, format_name, teacher)


def fit_sources(encoder: SentenceEncoder, sources: Sequence[tuple[list[LabeledCandidate], str]], rules: Labeler,
                config: CalibratedFitConfig | None = None) -> tuple[CalibratedHead, CalibratedFitReport]:
    """Encode every source's items, label them with ``rules`` (for weak labels) and fit a calibrated head."""
    items = [item for source_items, _ in sources for item in source_items]
    names = [name for source_items, name in sources for _ in source_items]
    candidates = [item.candidate for item in items]
    with torch.inference_mode():
        features = candidate_features(encoder, candidates).numpy()
    rules_levels = np.array([int(label.level) for label in rules.label(candidates)])
    return fit_calibrated(features, np.array([int(item.level) for item in items]), names,
                          "+".join(name for _, name in sources), config, rules_levels)
