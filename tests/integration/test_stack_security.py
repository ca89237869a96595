"""What the embedded stack lets in: its PostgreSQL only with the password of the data directory, its Ray
(on every interface: Ray cannot bind to 127.0.0.1) only with the token; the stack's own processes have both,
and neither is printed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from tacit.core.endpoints import Endpoints, ray_token_file, state_path
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

REFUSED = "Authentication token is missing or incorrect"


def test_the_secrets_are_readable_by_their_owner_only(embedded_stack: Endpoints, settings: TacitSettings) -> None:
    for secret in ray_token_file(settings), settings.data_dir / "postgres-password", state_path(settings):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret


def test_postgres_wants_the_password(embedded_stack: Endpoints) -> None:
    url = make_url(embedded_stack.database_url)
    assert url.password
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database, connect_timeout=5)


def test_status_masks_the_password(embedded_stack: Endpoints, settings: TacitSettings) -> None:
    password = make_url(embedded_stack.database_url).password
    assert password not in stack.status(settings)["postgres"]


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
