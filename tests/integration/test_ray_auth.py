"""The embedded Ray listens on every interface (Ray cannot bind to 127.0.0.1), so it runs with token
authentication: the stack's own processes join it, a client without the token is turned away."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tacit.core.endpoints import Endpoints, ray_token_file
from tacit.core.settings import TacitSettings
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

REFUSED = "Authentication token is missing or incorrect"


def test_the_token_is_readable_by_its_owner_only(embedded_stack: Endpoints, settings: TacitSettings) -> None:
    assert stat.S_IMODE(ray_token_file(settings).stat().st_mode) == 0o600


def test_a_client_without_the_token_is_refused(embedded_stack: Endpoints, tmp_path: Path) -> None:
    log = tmp_path / "client.log"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH")}
    client = subprocess.Popen(
        [sys.executable, "-c", f"import ray; ray.init(address={embedded_stack.ray_address!r})"],
        env={**environment, "RAY_AUTH_MODE": "disabled"}, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: REFUSED in log.read_text() or client.poll() is not None, "the client to be refused", log)
        assert REFUSED in log.read_text()
    finally:
        client.kill()
        client.wait()
