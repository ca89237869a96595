"""The labeler interface every implementation follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tacit.core.domain import FeedbackCandidate, Label


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
