"""The labeler interface every implementation follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

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


class ProbabilisticLabeler(Labeler, Protocol):
    """A labeler that also gives each candidate's probability of every level (columns: levels 1-5).

    The labels are decided from those probabilities, so both come from one pass over the batch; the
    evaluation ranks and calibrates by them (`tacit labelers eval`). The database stores the label only.
    """

    def label_with_probabilities(self, candidates: Sequence[FeedbackCandidate]) -> tuple[list[Label], np.ndarray]: ...
