"""The cascade: cheap labelers first, the LLM judge only for what they are unsure of, within a budget.

About three quarters of real follow-ups are plainly neutral and most of the rest say "thanks" or "that's
wrong" in so many words: the rules and the embedding classifier settle those for nearly nothing. An item
goes on to the next labeler while its best label so far is below ``threshold``; the LLM gets the least
confident of the remaining ones, as many as the budget allows (a share of all items seen, and/or a rate),
so its cost is bounded whatever the traffic. Each item keeps its most confident label, stored under the id
and version of the labeler that gave it; the reason says it came through the cascade.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tacit.core.domain import FeedbackCandidate, Label
from tacit.labels.base import Labeler


@dataclass
class LLMBudget:
    """How many items may go to the LLM: at most ``fraction`` of all items seen, ``per_minute`` on average.

    The rate is a token bucket holding up to one minute's worth, so a quiet spell lets a burst through
    but never more than a minute's allowance at once. None means no limit of that kind.
    """

    fraction: float | None
    per_minute: float | None
    clock: Callable[[], float] = time.monotonic
    seen: int = 0
    sent: int = 0

    def __post_init__(self) -> None:
        self._tokens = self.per_minute or 0.0
        self._refilled = self.clock()

    def grant(self, items: int, wanted: int) -> int:
        """Count ``items`` new items seen; return how many of the ``wanted`` may go to the LLM now."""
        self.seen += items
        allowed = wanted
        if self.fraction is not None:
            allowed = min(allowed, math.floor(self.fraction * self.seen) - self.sent)
        if self.per_minute is not None:
            now = self.clock()
            self._tokens = min(self.per_minute, self._tokens + (now - self._refilled) * self.per_minute / 60)
            self._refilled = now
            allowed = min(allowed, math.floor(self._tokens))
            self._tokens -= max(allowed, 0)
        granted = max(allowed, 0)
        self.sent += granted
        return granted


class Cascade:
    labeler_id = "cascade"
    version = "1"

    def __init__(self, cheap: Sequence[Labeler], llm: Labeler, threshold: float, budget: LLMBudget) -> None:
        self.cheap = tuple(cheap)
        self.llm = llm
        self.threshold = threshold
        self.budget = budget

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        labels = self.cheap[0].label(candidates)
        for labeler in self.cheap[1:]:
            self._relabel(labeler, candidates, labels, self._unsure(labels))
        unsure = sorted(self._unsure(labels), key=lambda i: labels[i].confidence)
        granted = self.budget.grant(len(candidates), len(unsure))
        self._relabel(self.llm, candidates, labels, unsure[:granted])
        over_budget = set(unsure[granted:])
        return [self._mark(label, index in over_budget) for index, label in enumerate(labels)]

    def _unsure(self, labels: list[Label]) -> list[int]:
        return [i for i, label in enumerate(labels) if label.confidence < self.threshold]

    @staticmethod
    def _relabel(labeler: Labeler, candidates: Sequence[FeedbackCandidate], labels: list[Label],
                 indexes: list[int]) -> None:
        """Give ``labeler`` the items at ``indexes``; keep whichever label of each is more confident."""
        if not indexes:
            return
        for index, label in zip(indexes, labeler.label([candidates[i] for i in indexes]), strict=True):
            if label.confidence >= labels[index].confidence:
                labels[index] = label

    def _mark(self, label: Label, over_budget: bool) -> Label:
        note = "unsure, LLM budget spent; " if over_budget else ""
        return replace(label, reason=f"cascade: {note}{label.reason}")
