"""Helpers shared by the test suites: constants, builders and fakes, imported as ``tests.helpers.*``.

Test modules never import each other; what several of them need lives here (plain code) or in a
``conftest.py`` (fixtures). Nothing here is collected: no module is named ``test_*``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tacit.devstack.processes import log_tail


def wait_until(condition: Callable[[], object], what: str, *logs: Path, timeout: float = 120.0,
               interval: float = 0.5) -> None:
    """Poll ``condition`` every ``interval`` seconds until it is true; past ``timeout`` seconds, fail naming
    ``what`` and showing the tails of ``logs`` (of the processes involved)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}:\n{log_tail(log)}" for log in logs)
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tails}")
        time.sleep(interval)


async def wait_until_async(condition: Callable[[], object], what: str, timeout: float = 10.0,
                           interval: float = 0.005) -> None:
    """``wait_until`` inside an event loop: polls without blocking the loop's other tasks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
