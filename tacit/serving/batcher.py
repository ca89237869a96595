"""Dynamic micro-batching: concurrent requests share model calls.

A reward model called from an RLHF loop sees many small concurrent requests; one model call per request
wastes most of each call on overhead and padding. Here every request's texts join one queue, and a single
batching task forms model calls from it:

- a batch is bounded by texts and by *padded* tokens (its longest text times its size), so a batch of long
  texts is small and a batch of short ones large;
- it waits at most ``max_wait_s`` after the oldest text arrived for others to join;
- the request with the fewest texts left goes first (the oldest among equals): a one-text request that
  arrives behind one of 512 texts rides the next call, and requests of equal size finish in arrival order
  instead of all together at the end, as they would if every call took a text of each;
- its longest waiting text starts the batch, and texts of any request join only while the batch's shortest
  text is at least ``MIN_FILL`` of its longest: a transformer's cost grows with the padded length, and on
  a CPU, where a larger batch is hardly cheaper per text, padding is the waste that counts (measured on
  HH-RLHF transcripts: a batch of a text from each request padded to 1.8x the real tokens, this to 1.1x);
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

from tacit.model.scoring import Features, Scores
from tacit.serving.model import ServedModel


@dataclass(frozen=True)
class BatchLimits:
    max_texts: int
    max_tokens: int
    max_wait_s: float


MIN_FILL = 0.8  # shortest text in a batch / longest: at most a fifth of its tokens are padding


@dataclass(eq=False)
class _Request:
    model: ServedModel
    features: Sequence[Features]
    done: asyncio.Future[Scores]
    arrived: float = field(default_factory=time.monotonic)
    rewards: list[float] = field(init=False)
    probabilities: list[list[float]] = field(init=False)
    heads: list[dict[str, float]] = field(init=False)
    waiting: list[int] = field(init=False)  # indices not yet in a batch, longest first
    unscored: int = field(init=False)

    def __post_init__(self) -> None:
        self.rewards = [0.0] * len(self.features)
        self.probabilities = [[]] * len(self.features)
        self.heads = [{}] * len(self.features)
        self.waiting = sorted(range(len(self.features)), key=lambda i: -self.length(i))
        self.unscored = len(self.features)

    def length(self, index: int) -> int:
        return len(self.features[index]["input_ids"])


Slot = tuple[_Request, int]


def take_batch(requests: Sequence[_Request], limits: BatchLimits) -> list[Slot]:
    """The next model call: the first request's longest waiting text, then, in the same order of requests,
    every text for its model that keeps the batch within both limits and ``MIN_FILL``; empty when nothing
    waits."""
    queue = sorted((r for r in requests if r.waiting and not r.done.done()), key=lambda r: len(r.waiting))
    if not queue:
        return []
    first = queue[0]
    shortest = longest = first.length(first.waiting[0])
    batch: list[Slot] = []
    for request, index in [(r, i) for r in queue if r.model is first.model for i in r.waiting]:
        low, high = min(shortest, request.length(index)), max(longest, request.length(index))
        if batch and (low < MIN_FILL * high or high * (len(batch) + 1) > limits.max_tokens):
            continue
        batch.append((request, index))
        shortest, longest = low, high
        if len(batch) == limits.max_texts:
            break
    for request, index in batch:
        request.waiting.remove(index)
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
            return Scores([], [], [])
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
            if batch:
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
        for (request, index), reward, probabilities, heads in zip(batch, *scores, strict=True):
            request.rewards[index] = reward
            request.probabilities[index] = probabilities
            request.heads[index] = heads
            request.unscored -= 1
            if not request.unscored and not request.done.done():
                request.done.set_result(Scores(request.rewards, request.probabilities, request.heads))
