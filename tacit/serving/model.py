"""The model being served: a loaded checkpoint, its registry version, and how requests become its tokens.

Truncation happens here, per item, so that it can be reported: a conversation that does not fit loses its
oldest history turns first, then the start of what is left (instructions, query); the response, which is
what gets judged, is never cut. A response that cannot fit on its own is refused instead of scored blind.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tacit.core.heads import SATISFACTION
from tacit.core.settings import TacitSettings
from tacit.model import layouts
from tacit.model.schema import ChatItem, Item, Truncation
from tacit.model.scoring import CheckpointError, Features, RewardScorer


def torch_threads(settings: TacitSettings) -> int:
    """``TACIT_SERVE_THREADS``, else one physical core fewer than torch would take, left to the event loop
    and the tokenizer thread: with every core, torch's threads wait at each operator's barrier for a thread
    that the event loop (or another process) preempted, and small batches, which run the most operators per
    text, lose the most (the serving benchmark: 2 threads against 1 on 2 cores)."""
    return settings.serve_threads or max(1, (psutil.cpu_count(logical=False) or 1) - 1)


def load_scorer(checkpoint: Path, settings: TacitSettings) -> RewardScorer:
    """A checkpoint as the service runs it: on its share of the cores, int8 where TACIT_SERVE_QUANTIZE asks.
    A checkpoint without the head /get_reward serves is refused here, so that a swap keeps the model it has
    instead of failing every /get_reward request."""
    scorer = RewardScorer.load(
        checkpoint, settings, threads=torch_threads(settings), quantize=settings.serve_quantize
    )
    served = (SATISFACTION, *scorer.spec.heads)
    if settings.serve_reward_head not in served:
        raise CheckpointError(
            f"TACIT_SERVE_REWARD_HEAD is {settings.serve_reward_head!r} but {checkpoint.name} has the heads "
            f"{', '.join(served)}; name one of them, or serve a checkpoint trained with that head "
            "(TACIT_TRAIN_HEADS).")
    return scorer


class ResponseTooLongError(ValueError):
    """A response longer than the model reads; scoring what is left of it would judge a different reply."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"items.{index}.response: {tokens} tokens with the layout around it, more than the {limit} "
            "this model reads; shorten the response or serve a model with a longer max_length."
        )


@dataclass(frozen=True)
class Encoded:
    features: Features
    truncation: Truncation | None


@dataclass(frozen=True, eq=False)
class ServedModel:
    """Immutable once loaded, so a request holds on to the model it was encoded for across a swap."""

    scorer: RewardScorer
    version: int | None  # None for a checkpoint that is not in the registry
    metrics: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None  # the tenant whose champion it is; None for the global model

    @property
    def max_length(self) -> int:
        return self.scorer.max_length

    def encode(self, items: Sequence[Item]) -> list[Encoded]:
        return [self._encode_item(index, item) for index, item in enumerate(items)]

    def encode_texts(self, texts: Sequence[str]) -> list[Encoded]:
        return [self._encode_text(index, text) for index, text in enumerate(texts)]

    def _encode_item(self, index: int, item: Item) -> Encoded:
        if not isinstance(item, ChatItem):
            return self._encode_text(index, item.text)
        # The fewest oldest turns to drop so that the rest fits; fewer turns never give more tokens.
        dropped = bisect_left(range(len(item.history)), True, key=lambda n: self._fits(item, n))
        text = self._render(item, dropped)
        encoded = self._encode_text(index, text)
        if encoded.truncation is not None:
            self._check_response_fits(index, text, item.response)
        if not dropped:
            return encoded
        tokens = encoded.truncation.tokens_dropped if encoded.truncation else 0
        truncation = Truncation(index=index, history_turns_dropped=dropped, tokens_dropped=tokens)
        return Encoded(encoded.features, truncation)

    def _encode_text(self, index: int, text: str) -> Encoded:
        features = dict(self.scorer.tokenizer(text))
        tokens = len(features["input_ids"])
        if tokens <= self.max_length:
            return Encoded(features, None)
        features = dict(self.scorer.tokenizer(text, truncation=True, max_length=self.max_length))
        return Encoded(features, Truncation(index=index, tokens_dropped=tokens - self.max_length))

    def _render(self, item: ChatItem, dropped: int) -> str:
        return layouts.render(item.history[dropped:], item.query, item.response, self.scorer.spec.layout)

    def _fits(self, item: ChatItem, dropped: int) -> bool:
        return self._length(self._render(item, dropped)) <= self.max_length

    def _length(self, text: str) -> int:
        return len(self.scorer.tokenizer(text)["input_ids"])

    def _check_response_fits(self, index: int, text: str, response: str) -> None:
        """Left truncation keeps the end of the text: the response survives if it and what follows fit."""
        tail = self._length(text[text.rindex(response) :])
        if tail > self.max_length:
            raise ResponseTooLongError(index, tail, self.max_length)
