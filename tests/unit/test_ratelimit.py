"""The replay rate limit on an injected clock: the schedule is checked without waiting for it."""

from __future__ import annotations

import asyncio

import pytest

from tacit.ingest.ratelimit import TokenBucket


class FakeTime:
    """A clock that only moves when the bucket sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_takes(bucket: TokenBucket, sizes: list[int]) -> None:
    async def takes() -> None:
        for size in sizes:
            await bucket.take(size)

    asyncio.run(takes())


def test_a_burst_of_one_second_then_the_rate():
    time = FakeTime()
    bucket = TokenBucket(10, clock=time.clock, sleep=time.sleep)
    run_takes(bucket, [1] * 30)
    assert time.sleeps == pytest.approx([0.1] * 20)  # 10 free (the full bucket), then one every 0.1 s
    assert time.now - 100 == pytest.approx(2.0)


def test_a_take_larger_than_the_bucket_waits_its_share_instead_of_forever():
    time = FakeTime()
    bucket = TokenBucket(4, clock=time.clock, sleep=time.sleep)
    run_takes(bucket, [10, 2])
    assert time.sleeps == pytest.approx([1.5, 0.5])  # 6 tokens of debt at 4/s, then 2 more


def test_idle_time_refills_the_bucket_up_to_one_second():
    time = FakeTime()
    bucket = TokenBucket(5, clock=time.clock, sleep=time.sleep)
    run_takes(bucket, [5])
    time.now += 60  # idle for a minute: still only one second's worth is saved up
    run_takes(bucket, [5, 5])
    assert time.sleeps == pytest.approx([1.0])
