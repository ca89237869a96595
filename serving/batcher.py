"""Dynamic micro-batching: concurrent requests share model calls.

A reward model called from an RLHF loop sees many small concurrent requests; one model call per request
wastes most of each call on overhead and padding. Here every request's texts join one queue, and a single
batching task forms model calls from it:

- a batch is bounded by texts and by *padded* tokens (its longest text times its size), so a batch of long
  texts is small and a batch of short ones large;
- it waits at most ``max_wait_s`` after the oldest text arrived for others to join;
- it takes texts round-robin across the waiting requests, each request's longest first, so a request of
  512 long texts is spread over many calls and a one-text request that arrives behind it rides the next;
- the model runs in one dedicated thread (it is not thread-safe), never on the event loop;
- texts are only batched with texts encoded for the same model, so after a hot swap the requests already
  queued finish on the model they were encoded for.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from serving.model import ServedModel
from tacit.scoring import Features, Scores


@dataclass(frozen=True)
class BatchLimits:
    max_texts: int
    max_tokens: int
    max_wait_s: float


@dataclass(eq=False)
class _Request:
    model: ServedModel
    features: Sequence[Features]
    done: asyncio.Future[Scores]
    arrived: float = field(default_factory=time.monotonic)
    rewards: list[float] = field(init=False)
    probabilities: list[list[float]] = field(init=False)
    waiting: deque[int] = field(init=False)  # indices not yet in a batch, longest first
    unscored: int = field(init=False)

    def __post_init__(self) -> None:
        self.rewards = [0.0] * len(self.features)
        self.probabilities = [[]] * len(self.features)
        lengths = [len(features["input_ids"]) for features in self.features]
        self.waiting = deque(sorted(range(len(lengths)), key=lambda i: -lengths[i]))
        self.unscored = len(self.features)

    def length(self, index: int) -> int:
        return len(self.features[index]["input_ids"])


Slot = tuple[_Request, int]


def take_batch(requests: Sequence[_Request], limits: BatchLimits) -> list[Slot]:
    """The next model call: texts round-robin over the requests for the first request's model, while the
    batch stays within both limits; never empty while the first request waits."""
    model = requests[0].model
    candidates = [r for r in requests if r.model is model and r.waiting and not r.done.done()]
    batch: list[Slot] = []
    longest = 0
    while candidates and len(batch) < limits.max_texts:
        for request in list(candidates):
            index = request.waiting[0]
            padded = max(longest, request.length(index)) * (len(batch) + 1)
            if batch and (padded > limits.max_tokens or len(batch) == limits.max_texts):
                return batch
            request.waiting.popleft()
            batch.append((request, index))
            longest = max(longest, request.length(index))
            if not request.waiting:
                candidates.remove(request)
    return batch


class MicroBatcher:
    """``score`` is awaited by request handlers; ``run`` is the batching task, started by the app."""

    def __init__(
        self, limits: BatchLimits, executor: Executor, observe: Callable[[int, int, float], None]
    ) -> None:
        """``observe(texts, padded_tokens, seconds)`` is told about every model call (metrics)."""
        self.limits = limits
        self._executor = executor
        self._observe = observe
        self._requests: deque[_Request] = deque()
        self._arrived = asyncio.Event()

    @property
    def queued_texts(self) -> int:
        return sum(len(request.waiting) for request in self._requests)

    async def score(self, model: ServedModel, features: Sequence[Features]) -> Scores:
        if not features:
            return Scores([], [])
        request = _Request(model, features, asyncio.get_running_loop().create_future())
        self._requests.append(request)
        self._arrived.set()
        return await request.done

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            await self._gather_more()
            batch = take_batch(self._requests, self.limits)
            self._forget_dispatched()
            await self._call_model(batch)

    async def _gather_more(self) -> None:
        """Give texts up to ``max_wait_s`` after the oldest arrived to join, unless a batch is full."""
        wait = self._requests[0].arrived + self.limits.max_wait_s - time.monotonic()
        if wait > 0 and self.queued_texts < self.limits.max_texts:
            await asyncio.sleep(wait)

    def _forget_dispatched(self) -> None:
        """Requests whose texts are all in batches (or whose caller went away) leave the queue."""
        self._requests = deque(r for r in self._requests if r.waiting and not r.done.done())
        if not self._requests:
            self._arrived.clear()

    async def _call_model(self, batch: list[Slot]) -> None:
        model = batch[0][0].model
        features = [request.features[index] for request, index in batch]
        started = time.monotonic()
        try:
            scores = await asyncio.get_running_loop().run_in_executor(
                self._executor, model.scorer.score_encoded, features
            )
        except Exception as error:  # noqa: BLE001 - the callers get it; the batcher must keep going
            for request in {request for request, _ in batch}:
                if not request.done.done():
                    request.done.set_exception(error)
            return
        longest = max(len(item["input_ids"]) for item in features)
        self._observe(len(batch), longest * len(batch), time.monotonic() - started)
        for (request, index), reward, probabilities in zip(batch, *scores, strict=True):
            request.rewards[index] = reward
            request.probabilities[index] = probabilities
            request.unscored -= 1
            if not request.unscored and not request.done.done():
                request.done.set_result(Scores(request.rewards, request.probabilities))
