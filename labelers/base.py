"""The labeler interface every implementation follows, and the registry that picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tacit.domain import FeedbackCandidate, Label
from tacit.errors import TacitError
from tacit.settings import TacitSettings, get_settings


class Labeler(Protocol):
    """Reads each candidate's follow-up and rates the reply it answers.

    Batches in, one label per candidate out, in the same order: model-backed labelers amortise their
    cost over a batch, and the worker zips labels back onto candidates. ``labeler_id`` and ``version``
    are stored with every label so labels from different labelers, or different versions of one, are
    never mixed up when the training set is built.
    """

    labeler_id: str
    version: str

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]: ...


def _rules(settings: TacitSettings) -> Labeler:
    from labelers.rules import RulesLabeler

    return RulesLabeler()


def _embedding(settings: TacitSettings) -> Labeler:
    from labelers.embedding import EmbeddingLabeler

    return EmbeddingLabeler.from_settings(settings)


def _llm(settings: TacitSettings) -> Labeler:
    from labelers.llm import LLMLabeler

    return LLMLabeler.from_settings(settings)


def _cascade(settings: TacitSettings) -> Labeler:
    from labelers.cascade import Cascade

    return Cascade.from_settings(settings)


# Factories import their module on call: a worker that runs the rules never pays for a model's imports.
_REGISTRY: dict[str, Callable[[TacitSettings], Labeler]] = {
    "rules": _rules, "embedding": _embedding, "llm": _llm, "cascade": _cascade,
}


def get_labeler(name: str, settings: TacitSettings | None = None) -> Labeler:
    """The labeler called ``name``, configured from ``settings`` (default: the process's settings)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise TacitError(f"Unknown labeler {name!r}; choose one of: {known} "
                         "(the worker's is TACIT_LABELER).") from None
    return factory(settings or get_settings())
