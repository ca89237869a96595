"""The labeler interface every implementation follows, and the registry that picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tacit.domain import FeedbackCandidate, Label


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


def _rules() -> Labeler:
    from labelers.rules import RulesLabeler

    return RulesLabeler()


# Factories import their module on call: a worker that runs the rules never pays for a model's imports.
_REGISTRY: dict[str, Callable[[], Labeler]] = {"rules": _rules}


def get_labeler(name: str) -> Labeler:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"Unknown labeler {name!r}; set TACIT_LABELER to one of: {known}.") from None
    return factory()
