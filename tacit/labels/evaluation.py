"""How well a labeler agrees with human labels: per-level precision and recall, confusion, ROC-AUC, speed.

The AUC asks WildReward's question of a pointwise score: does it rank positive items above negative ones?
A labeler gives a level and a confidence, so its score is ``3 + (level - 3) * confidence``: a confident 5
ranks above an unsure 4, an unsure 2 above a confident 1, and every neutral sits at 3. Positive means
levels 4-5 and negative 1-2, neutral items left out; for data without positive items (EURTAD, DBDC3) it is
negative against all the rest, so the AUC says how well the score finds the negative items.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from tacit.core.domain import Label, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.labels.base import Labeler
from tacit.labels.datasets import LabeledCandidate, read_labeled
from tacit.labels.human_data import read_dbdc3, read_eurtad

LEVELS = [int(level) for level in SatisfactionLevel]
BATCH = 500
SAMPLE_SEED = 0
READERS: dict[str, Callable[[Path], list[LabeledCandidate]]] = {
    "labeled": read_labeled, "eurtad": read_eurtad, "dbdc3": read_dbdc3,
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


def evaluate(labeler: Labeler, items: Sequence[LabeledCandidate]) -> EvalReport:
    started = time.perf_counter()
    candidates = [item.candidate for item in items]
    labels = [label for start in range(0, len(candidates), BATCH)
              for label in labeler.label(candidates[start:start + BATCH])]
    seconds = time.perf_counter() - started
    truth = [int(item.level) for item in items]
    predicted = [int(label.level) for label in labels]
    precision, recall, _, support = precision_recall_fscore_support(truth, predicted, labels=LEVELS,
                                                                    zero_division=0)
    per_level = {level: LevelScores(float(p), float(r), int(s), predicted.count(level))
                 for level, p, r, s in zip(LEVELS, precision, recall, support, strict=True)}
    auc, task = _auc(truth, [score(label) for label in labels])
    return EvalReport(len(items), per_level, confusion_matrix(truth, predicted, labels=LEVELS).tolist(), auc, task,
                      len(items) / seconds)


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
    return "\n".join(lines)
