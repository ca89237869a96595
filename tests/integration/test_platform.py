"""`tacit up` on a fresh data directory: it starts the stack and a worker, and Ctrl-C stops all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tacit import stack
from tacit.settings import TacitSettings

pytestmark = pytest.mark.integration


def test_up_runs_until_interrupted_and_stops_what_it_started(tmp_path: Path):
    settings = TacitSettings(data_dir=tmp_path)
    env = {**os.environ, "TACIT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "tacit", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        output = ""
        while "worker: started" not in output and time.monotonic() < deadline and proc.poll() is None:
            output += proc.stdout.readline()
        assert "worker: started" in output, output
        recorded = [pid for record in stack.read_state(settings).values() for pid in record.pids]
        assert len(recorded) == 3 and all(psutil.pid_exists(pid) for pid in recorded)
        children = psutil.Process(proc.pid).children()
        assert any("worker" in " ".join(child.cmdline()) for child in children)

        proc.send_signal(signal.SIGINT)
        output += proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            stack.down(settings, report=lambda line: None)
    assert proc.returncode == 0, output
    assert not any(psutil.pid_exists(pid) for pid in recorded + [child.pid for child in children])
    assert not stack.state_path(settings).exists()
