"""Refinement: from a labeler's raw label to the label the trainer should use, kept as a second row.

Every candidate keeps its raw label (stage ``raw``) and gets one refined row: stage ``refined`` when the
item is fit to train on, stage ``filtered`` (the reason first in ``reason``) when a filter left it out. Both
carry the level after refusal validation. With implicit-feedback mining on, a refined neutral item is
first stored as ``pending`` and becomes ``refined`` once later follow-ups decide it (``tacit.refine.mining``).
Keeping the stages apart in PostgreSQL shows what each step did and lets the trainer pick ``refined``
alone; the raw rows stay for audit and for `tacit relabel`.
These are regexes and pure functions, cheap enough to run on every batch in the worker, unless
TACIT_REFUSAL_VALIDATOR=llm asks a model about the short refusals (the worker runs refinement in an executor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tacit.core.domain import FILTERED, REFINED, FeedbackCandidate, Label
from tacit.core.settings import TacitSettings
from tacit.refine.filters import filter_reason
from tacit.refine.refusal import HEURISTIC, RefusalValidator, validated


def get_validator(settings: TacitSettings) -> RefusalValidator:
    """The validator TACIT_REFUSAL_VALIDATOR names; the LLM's module is imported only when chosen."""
    if settings.refusal_validator == "llm":
        from tacit.refine.refusal_llm import LLMRefusalValidator

        return LLMRefusalValidator.from_settings(settings)
    return HEURISTIC


def refine(candidate: FeedbackCandidate, label: Label) -> Label:
    """The candidate's refined (or filtered) label, from its ``label`` after refusal validation."""
    reason = filter_reason(candidate)
    if reason is not None:
        return replace(label, stage=FILTERED, reason=f"filtered: {reason}; {label.reason}")
    return replace(label, stage=REFINED)


def with_refinements(candidates: Sequence[FeedbackCandidate], labels: Sequence[Label],
                     validator: RefusalValidator = HEURISTIC) -> list[tuple[FeedbackCandidate, Label]]:
    """Each candidate with its raw label, then each with its refined or filtered one: the rows to store."""
    pairs = list(zip(candidates, labels, strict=True))
    checked = validated(validator, candidates, labels)  # the whole batch at once: an LLM asks in parallel
    return pairs + [(candidate, refine(candidate, label)) for candidate, label in zip(candidates, checked)]
