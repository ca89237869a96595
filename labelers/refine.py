"""Refinement: from a labeler's raw label to the label the trainer should use, kept as a second row.

Every candidate keeps its raw label (stage ``raw``) and gets one refined row: stage ``refined`` when the
item is fit to train on, stage ``filtered`` (the reason first in ``reason``) when a filter left it out. Both
carry the level after refusal validation. Keeping the stages apart in PostgreSQL shows what each step did
and lets the trainer pick ``refined`` alone; the raw rows stay for audit and for `tacit relabel`.
These are regexes and pure functions: cheap enough to run on every batch in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from labelers.filters import filter_reason
from labelers.refusal import validate
from tacit.domain import FeedbackCandidate, Label

RAW = "raw"
REFINED = "refined"
FILTERED = "filtered"
DERIVED_STAGES = (REFINED, FILTERED)


def refine(candidate: FeedbackCandidate, label: Label) -> Label:
    """The candidate's refined (or filtered) label, derived from its raw ``label``."""
    verdict = validate(candidate)
    if verdict is not None and verdict.level is not None:
        label = replace(label, level=verdict.level, reason=f"{verdict.reason}; was {label.reason}")
    reason = filter_reason(candidate)
    if reason is not None:
        return replace(label, stage=FILTERED, reason=f"filtered: {reason}; {label.reason}")
    return replace(label, stage=REFINED)


def with_refinements(candidates: Sequence[FeedbackCandidate],
                     labels: Sequence[Label]) -> list[tuple[FeedbackCandidate, Label]]:
    """Each candidate with its raw label, then each with its refined or filtered one: the rows to store."""
    pairs = list(zip(candidates, labels, strict=True))
    return pairs + [(candidate, refine(candidate, label)) for candidate, label in pairs]
