"""`tacit up` on a fresh data directory: it starts the stack, a worker, the gateway, the retraining schedule and
the dashboard; Ctrl-C or SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tacit.core.endpoints import read_state, state_path
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_runs_until_interrupted_and_stops_what_it_started(tmp_path: Path, stop_signal: signal.Signals):
    """SIGTERM is how systemd, Docker and Kubernetes stop a process: it must stop every child like Ctrl-C."""
    settings = TacitSettings(data_dir=tmp_path)
    gateway_port = stack.free_port()
    env = {**os.environ, "TACIT_DATA_DIR": str(tmp_path), "TACIT_GATEWAY_PORT": str(gateway_port),
           "TACIT_DASHBOARD_PORT": str(stack.free_port())}
    # Started with SIGINT ignored, as under nohup or a test runner that ignores it: Ctrl-C must still stop it.
    proc = subprocess.Popen([sys.executable, "-m", "tacit", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # noqa: PLW1509
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        output = ""
        while "dashboard: started" not in output and time.monotonic() < deadline and proc.poll() is None:
            output += proc.stdout.readline()
        assert "worker: started" in output and "gateway: started" in output, output
        wait_until(lambda: answers(f"http://127.0.0.1:{gateway_port}/healthz"), "the gateway",
                   tmp_path / "logs" / "gateway.log")
        recorded = [pid for record in read_state(settings).values() for pid in record.pids]
        assert len(recorded) == 3 and all(psutil.pid_exists(pid) for pid in recorded)
        children = psutil.Process(proc.pid).children()
        commands = [" ".join(child.cmdline()) for child in children]
        assert any("tacit worker" in command for command in commands), commands
        assert any("tacit gateway" in command for command in commands), commands
        assert any("tacit schedule" in command for command in commands), commands  # the loop closes
        assert any("tacit dashboard" in command for command in commands), commands

        proc.send_signal(stop_signal)
        output += proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in children:  # orphans of a failed stop: never left behind by the test
            if child.is_running():
                child.kill()
        stack.down(settings, report=lambda line: None)
    assert proc.returncode == 0, output
    assert not any(psutil.pid_exists(pid) for pid in recorded + [child.pid for child in children])
    assert not state_path(settings).exists()
