"""A token bucket for ``tacit replay --rate``: events per second on average, bursts of at most one second.

The clock and the sleep are injectable so that tests can check the schedule without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _tokens: float = field(init=False)
    _checked: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.rate
        self._checked = self.clock()

    async def take(self, n: int) -> None:
        """Take ``n`` tokens, sleeping until they were earned.

        The bucket may go into debt, so a take larger than the bucket (a long conversation) waits for its
        share instead of waiting forever; the debt is paid off by the sleep.
        """
        now = self.clock()
        self._tokens = min(self.rate, self._tokens + (now - self._checked) * self.rate) - n
        self._checked = now
        if self._tokens < 0:
            await self.sleep(-self._tokens / self.rate)
