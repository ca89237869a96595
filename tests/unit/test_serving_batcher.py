"""The micro-batcher: which texts share a model call, and that callers get their own results back."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from tacit.model.scoring import Scores
from tacit.serving.batcher import BatchLimits, MicroBatcher, _Request, take_batch
from tests.helpers import wait_until_async


class FakeScorer:
    """Reward = number of tokens, so every answer says which text it belongs to; records each call."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.entered = 0  # calls begun, the ones held at the gate included
        self.gate = gate

    def score_encoded(self, features):
        self.entered += 1
        if self.gate is not None:
            self.gate.wait(5)
        lengths = [len(item["input_ids"]) for item in features]
        self.calls.append(lengths)
        return Scores([float(n) for n in lengths], [[1.0] for _ in lengths], [{} for _ in lengths])


def model(scorer: FakeScorer | None = None) -> SimpleNamespace:
    return SimpleNamespace(scorer=scorer or FakeScorer())


def texts(*lengths: int) -> list[dict[str, list[int]]]:
    return [{"input_ids": [0] * n} for n in lengths]


def request(served, *lengths: int) -> _Request:
    return _Request(served, texts(*lengths), asyncio.get_event_loop_policy().new_event_loop().create_future())


def lengths(batch) -> list[int]:
    return [req.length(index) for req, index in batch]


def test_the_request_with_fewest_texts_left_goes_first() -> None:
    served = model()
    big, small, later = request(served, 9, 9, 9), request(served, 9), request(served, 9)

    batch = take_batch([big, small, later], BatchLimits(max_texts=2, max_tokens=1000, max_wait_s=0))

    assert [req for req, _ in batch] == [small, later]
    assert len(big.waiting) == 3


def test_only_texts_of_similar_length_share_a_batch() -> None:
    queued = [request(model(), 100, 50), request(model(), 45, 90)]
    queued[1].model = queued[0].model
    limits = BatchLimits(max_texts=8, max_tokens=10_000, max_wait_s=0)

    assert lengths(take_batch(queued, limits)) == [100, 90]
    assert lengths(take_batch(queued, limits)) == [50, 45]


def test_padded_tokens_bound_the_batch() -> None:
    served = model()
    queued = request(served, 10, 10, 10, 2)

    limits = BatchLimits(max_texts=100, max_tokens=25, max_wait_s=0)

    assert lengths(take_batch([queued], limits)) == [10, 10]
    assert lengths(take_batch([queued], limits)) == [10]
    assert lengths(take_batch([queued], limits)) == [2]


def test_a_text_over_the_token_budget_still_goes_alone() -> None:
    queued = request(model(), 50, 40)

    assert lengths(take_batch([queued], BatchLimits(8, 30, 0))) == [50]


def test_texts_of_an_older_model_are_never_batched_with_a_newer_one() -> None:
    old, new = model(), model()
    queued = [request(old, 4), request(new, 4), request(old, 4)]

    batch = take_batch(queued, BatchLimits(8, 1000, 0))

    assert [req.model for req, _ in batch] == [old, old]


@pytest.mark.parametrize("concurrent", [1, 12])
def test_concurrent_requests_share_calls_and_get_their_own_results(concurrent: int) -> None:
    served = model()

    async def main() -> list[Scores]:
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(BatchLimits(64, 10_000, 0.05), executor, lambda *args: None)
            runner = asyncio.create_task(batcher.run())
            answers = await asyncio.gather(
                *(batcher.score(served, texts(100 + i, 110 + i)) for i in range(concurrent))
            )
            runner.cancel()
            return answers

    answers = asyncio.run(main())

    assert [answer.rewards for answer in answers] == [[100.0 + i, 110.0 + i] for i in range(concurrent)]
    assert len(served.scorer.calls) == 1
    assert sorted(served.scorer.calls[0]) == sorted(n for i in range(concurrent) for n in (100 + i, 110 + i))


def test_a_small_request_overtakes_a_large_one_queued_before_it() -> None:
    gate = threading.Event()
    served = model(FakeScorer(gate))
    finished: list[str] = []

    async def timed(name: str, batcher: MicroBatcher, *lengths: int) -> None:
        await batcher.score(served, texts(*lengths))
        finished.append(name)

    async def main() -> None:
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(BatchLimits(4, 10_000, 0), executor, lambda *args: None)
            runner = asyncio.create_task(batcher.run())
            large = asyncio.create_task(timed("large", batcher, *[8] * 40))
            await wait_until_async(lambda: served.scorer.entered == 1, "the large request's first batch in use")
            small = asyncio.create_task(timed("small", batcher, 1))
            await wait_until_async(lambda: batcher.queued_texts == 36 + 1, "the small request queued")
            gate.set()
            await asyncio.gather(large, small)
            runner.cancel()

    asyncio.run(main())

    assert finished == ["small", "large"]
    assert 1 in served.scorer.calls[1]  # it rode the second call


def test_a_failing_model_call_fails_only_its_callers() -> None:
    class Exploding(FakeScorer):
        def score_encoded(self, features):
            if any(len(item["input_ids"]) == 13 for item in features):
                raise RuntimeError("boom")
            return super().score_encoded(features)

    served = model(Exploding())

    async def main() -> tuple[BaseException | Scores, ...]:
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(BatchLimits(1, 10_000, 0), executor, lambda *args: None)
            runner = asyncio.create_task(batcher.run())
            answers = await asyncio.gather(
                batcher.score(served, texts(13)),
                batcher.score(served, texts(2)),
                return_exceptions=True,
            )
            runner.cancel()
            return answers

    failed, served = asyncio.run(main())

    assert isinstance(failed, RuntimeError)
    assert served.rewards == [2.0]
