"""How well a labeler agrees with human labels: per-level precision and recall, confusion, ROC-AUC, ECE, speed.

The AUC asks WildReward's question of a pointwise score: does it rank positive items above negative ones?
A labeler gives a level and a confidence, so its score is ``3 + (level - 3) * confidence``: a confident 5
ranks above an unsure 4, an unsure 2 above a confident 1, and every neutral sits at 3. Positive means
levels 4-5 and negative 1-2, neutral items left out; for data without positive items (EURTAD, DBDC3) it is
negative against all the rest, so the AUC says how well the score finds the negative items.

Two fixed tasks are reported for every data set as well: dissatisfied (levels 1-2) against the rest, and
dissatisfied against positive (4-5). A labeler whose labels carry per-level probabilities (``Label.probabilities``:
the calibrated and embedding labelers) is ranked by P(level <= 2); the others by ``-score``. Calibration:
``ECE (P<=2)`` bins P(level <= 2) against whether the human said 1-2 (probabilistic labelers only);
``ECE (label)`` bins each label's confidence against whether its level is the human's, which is what a
stored label's confidence claims. Both use ten equal-width bins, like the trainer's ECE.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from tacit.core.domain import Label, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.labels.base import Labeler
from tacit.labels.datasets import LabeledCandidate, read_labeled
from tacit.labels.human_data import read_dbdc3, read_eurtad, read_feedbackqa

LEVELS = [int(level) for level in SatisfactionLevel]
BATCH = 500
SAMPLE_SEED = 0
ECE_BINS = 10
READERS: dict[str, Callable[[Path], list[LabeledCandidate]]] = {
    "labeled": read_labeled, "eurtad": read_eurtad, "dbdc3": read_dbdc3, "feedbackqa": read_feedbackqa,
}


@dataclass(frozen=True)
class LevelScores:
    precision: float
    recall: float
    support: int  # human-labeled items of the level
    predicted: int  # items the labeler gave the level


@dataclass(frozen=True)
class EvalReport:
    items: int
    per_level: dict[int, LevelScores]
    confusion: list[list[int]]  # rows: human level 1..5, columns: labeler level 1..5
    auc: float | None  # None when one side of the comparison is empty
    auc_task: str
    items_per_s: float
    dissatisfied: LevelScores  # levels 1-2 taken together: stored <= 2 against human <= 2
    auc_dissatisfied: float | None  # levels 1-2 against 3-5
    auc_dissatisfied_vs_positive: float | None  # levels 1-2 against 4-5, neutral left out
    ece_dissatisfied: float | None  # of P(level <= 2); None for labelers without probabilities
    ece_label: float  # of each label's confidence in its level


def read_items(path: Path, format_name: str, limit: int | None = None) -> list[LabeledCandidate]:
    """The file's items, or a seeded random sample of ``limit`` of them in file order.

    A sample rather than the first ``limit``: files are grouped by dialogue or source, and a slow labeler
    (an LLM on a CPU) must be measured on a representative few hundred items, the same ones every run.
    """
    try:
        reader = READERS[format_name]
    except KeyError:
        raise TacitError(f"Unknown format {format_name!r}; choose one of: {', '.join(READERS)}.") from None
    items = reader(path)
    if not items:
        raise TacitError(f"{path} holds no labeled follow-ups; check --format.")
    if limit is None or limit >= len(items):
        return items
    return [items[i] for i in sorted(random.Random(SAMPLE_SEED).sample(range(len(items)), limit))]


def score(label: Label) -> float:
    return 3 + (int(label.level) - 3) * label.confidence


def label_all(labeler: Labeler, items: Sequence[LabeledCandidate]) -> tuple[list[Label], np.ndarray | None, float]:
    """The labeler's labels of ``items`` in worker-sized batches, its probabilities if it has them, items/s."""
    started = time.perf_counter()
    candidates = [item.candidate for item in items]
    labels: list[Label] = []
    for start in range(0, len(candidates), BATCH):
        labels += labeler.label(candidates[start:start + BATCH])
    seconds = time.perf_counter() - started
    with_probabilities = bool(labels) and all(label.probabilities is not None for label in labels)
    probabilities = np.array([label.probabilities for label in labels]) if with_probabilities else None
    return labels, probabilities, len(items) / max(seconds, 1e-9)


def evaluate(labeler: Labeler, items: Sequence[LabeledCandidate]) -> EvalReport:
    labels, probabilities, rate = label_all(labeler, items)
    return measure([int(item.level) for item in items], labels, probabilities, rate)


def measure(truth: Sequence[int], labels: Sequence[Label], probabilities: np.ndarray | None = None,
            items_per_s: float = float("nan")) -> EvalReport:
    """The report of ``labels`` (and the ``(n, 5)`` probabilities behind them, if any) against ``truth``."""
    truth = [int(level) for level in truth]
    predicted = [int(label.level) for label in labels]
    precision, recall, _, support = precision_recall_fscore_support(truth, predicted, labels=LEVELS,
                                                                    zero_division=0)
    per_level = {level: LevelScores(float(p), float(r), int(s), predicted.count(level))
                 for level, p, r, s in zip(LEVELS, precision, recall, support, strict=True)}
    auc, task = _auc(truth, [score(label) for label in labels])
    human_low = np.array(truth) <= 2
    stored_low = np.array(predicted) <= 2
    low_p, low_r, _, _ = precision_recall_fscore_support(human_low, stored_low, average="binary", zero_division=0)
    dissatisfied = LevelScores(float(low_p), float(low_r), int(human_low.sum()), int(stored_low.sum()))
    if probabilities is None:
        risk, ece_low = -np.array([score(label) for label in labels]), None
    else:
        risk = probabilities[:, :2].sum(axis=1)
        ece_low = expected_calibration_error(risk, human_low)
    correct = np.array(truth) == np.array(predicted)
    return EvalReport(
        len(truth), per_level, confusion_matrix(truth, predicted, labels=LEVELS).tolist(), auc, task, items_per_s,
        dissatisfied=dissatisfied,
        auc_dissatisfied=_binary_auc(human_low, risk),
        auc_dissatisfied_vs_positive=_binary_auc(human_low[np.array(truth) != 3], risk[np.array(truth) != 3]),
        ece_dissatisfied=ece_low,
        ece_label=expected_calibration_error(np.array([label.confidence for label in labels]), correct),
    )


def expected_calibration_error(probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> float:
    """Item-weighted mean gap between a bin's mean probability and its share of true outcomes."""
    probability = np.asarray(probability, dtype=float)
    outcome = np.asarray(outcome, dtype=float)
    if not len(probability):
        return float("nan")
    index = np.minimum((probability * bins).astype(int), bins - 1)
    gaps = [abs(probability[index == b].mean() - outcome[index == b].mean()) * (index == b).sum()
            for b in np.unique(index)]
    return float(sum(gaps) / len(probability))


def _binary_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    if len(set(truth.tolist())) < 2:
        return None
    return float(roc_auc_score(truth, scores))


def _auc(truth: list[int], scores: list[float]) -> tuple[float | None, str]:
    if any(level >= 4 for level in truth):
        pairs = [(level >= 4, s) for level, s in zip(truth, scores, strict=True) if level != 3]
        task = "positive (4-5) vs negative (1-2)"
    else:
        pairs = [(level >= 3, s) for level, s in zip(truth, scores, strict=True)]
        task = "not negative (3) vs negative (1-2)"
    classes = {positive for positive, _ in pairs}
    if len(classes) < 2:
        return None, task
    return float(roc_auc_score([p for p, _ in pairs], [s for _, s in pairs])), task


def format_report(report: EvalReport) -> str:
    rate = f"{report.items_per_s:,.0f}" if report.items_per_s >= 100 else f"{report.items_per_s:.3g}"  # LLMs: < 1
    lines = [f"{report.items} items, {rate} items/s",
             "level  precision  recall  human  labeler"]
    lines += [f"{level:>5}  {s.precision:9.3f}  {s.recall:6.3f}  {s.support:5d}  {s.predicted:7d}"
              for level, s in report.per_level.items()]
    lines += ["confusion (rows: human level 1-5, columns: labeler level 1-5)"]
    lines += [f"{level:>5}  " + " ".join(f"{n:6d}" for n in row) for level, row in zip(LEVELS, report.confusion)]
    auc = "n/a (one side is empty)" if report.auc is None else f"{report.auc:.3f}"
    lines.append(f"ROC-AUC, {report.auc_task}: {auc}")
    low = report.dissatisfied
    lines.append(f"dissatisfied (1-2): precision {low.precision:.3f}, recall {low.recall:.3f}, "
                 f"human {low.support}, labeler {low.predicted}")
    lines.append(f"ROC-AUC, dissatisfied (1-2) vs rest: {_figure(report.auc_dissatisfied)}; "
                 f"vs positive (4-5): {_figure(report.auc_dissatisfied_vs_positive)}")
    lines.append(f"ECE, P(<=2): {_figure(report.ece_dissatisfied)}; label confidence: {_figure(report.ece_label)}")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
