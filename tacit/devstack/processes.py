"""Child processes of the CLI (worker, scoring service), started with this process's settings and always
stopped by their PID on the way out, also when the caller fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tacit.core.settings import TacitSettings

STOP_TIMEOUT_S = 30.0


@contextmanager
def tacit_child(settings: TacitSettings, *args: str, log: Path) -> Iterator[subprocess.Popen]:
    """Run ``tacit ARGS...`` with the same data directory; SIGTERM (then SIGKILL) it when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TACIT_DATA_DIR": str(settings.data_dir)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tacit", *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"
