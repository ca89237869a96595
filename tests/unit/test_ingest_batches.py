"""The queue between the worker's stream and its batch stage: size, timeout, order, back-pressure, failure."""

from __future__ import annotations

import asyncio

import pytest

from tacit.ingest.batches import Batches


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_full_batch_is_handed_over_with_its_events_in_order() -> None:
    async def scenario():
        batches = Batches(size=3, within=10)
        for i in range(3):
            await batches.add(i, f"event-{i}")
        return await batches.next()

    batch = run(scenario())
    assert batch.values == [0, 1, 2]
    assert batch.events == ["event-0", "event-1", "event-2"]


def test_a_partial_batch_is_handed_over_after_the_timeout() -> None:
    async def scenario():
        batches = Batches(size=100, within=0.01)
        await batches.add("a", 1)
        return await batches.next()

    assert run(scenario()).values == ["a"]


def test_reading_waits_while_a_full_batch_waits_for_the_batch_stage() -> None:
    async def scenario():
        batches = Batches(size=2, within=10, depth=1)
        for i in range(2):
            await batches.add(i, i)
        third = asyncio.ensure_future(batches.add(2, 2))
        await asyncio.sleep(0.01)
        blocked = not third.done()  # a full batch is waiting: no room for more
        first = await batches.next()
        await asyncio.wait_for(third, 1)
        return blocked, first.values

    blocked, first = run(scenario())
    assert blocked
    assert first == [0, 1]


def test_a_failed_batch_stage_stops_the_stream() -> None:
    async def scenario():
        batches = Batches(size=1, within=10, depth=1)

        async def failing_stage():
            raise ValueError("bug")

        stage = asyncio.ensure_future(failing_stage())
        stage.add_done_callback(batches.close)
        await batches.add(0, 0)
        await batches.add(1, 1)  # waits for room, then finds the stage gone

    with pytest.raises(ValueError, match="bug"):
        run(scenario())
