"""Batches between the worker's two stages: the per-record stream and the batch stage (label, store, ack).

Faust's ``stream.take`` stops reading while its caller handles a batch, so the event loop sat idle while the
batch stage waited on labeling, embeddings and PostgreSQL in the executor. Here the stream keeps reading and
doing its per-record work into the next batch while the batch stage stores the previous one. Each batch
keeps its Faust events, acknowledged by the batch stage only after its write, in the order they were read.
Memory stays bounded: when ``depth`` sealed batches are waiting, the stream waits too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    """Values in the order they were read, and the events to acknowledge once they are stored."""

    values: list[T] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)


class Batches(Generic[T]):
    """A queue of batches of at most ``size`` values; a partial one is handed over after ``within`` seconds."""

    def __init__(self, size: int, within: float, depth: int = 1) -> None:
        self.size, self.within, self.depth = size, within, depth
        self._open: Batch[T] = Batch()
        self._sealed: deque[Batch[T]] = deque()
        self._sealed_one = asyncio.Event()
        self._room = asyncio.Event()
        self._closed: asyncio.Future | None = None

    async def add(self, value: T, event: Any) -> None:
        """Add a value; waits while ``depth`` full batches wait for the batch stage (back-pressure)."""
        while len(self._sealed) >= self.depth:
            self._raise_if_closed()
            self._room.clear()
            await self._room.wait()
        self._raise_if_closed()
        self._open.values.append(value)
        self._open.events.append(event)
        if len(self._open.values) >= self.size:
            self._seal()

    async def next(self) -> Batch[T]:
        """The oldest full batch; if none comes within ``within`` seconds, the values read so far."""
        while not self._sealed:
            self._sealed_one.clear()
            try:
                await asyncio.wait_for(self._sealed_one.wait(), self.within)
            except TimeoutError:
                if self._open.values:
                    self._seal()
        batch = self._sealed.popleft()
        self._room.set()
        return batch

    def close(self, stage: asyncio.Future) -> None:
        """The batch stage ended (a bug, or cancelled): the stream must not wait for it forever."""
        self._closed = stage
        self._room.set()

    def _raise_if_closed(self) -> None:
        if self._closed is not None:
            self._closed.result()  # its exception, or CancelledError
            raise RuntimeError("the batch stage stopped")

    def _seal(self) -> None:
        self._sealed.append(self._open)
        self._open = Batch()
        self._sealed_one.set()
