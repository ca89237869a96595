"""The dashboard's app without a database: what answers without a key, and what a missing key gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tacit.core.db import make_engine
from tacit.core.settings import TacitSettings
from tacit.dashboard.app import create_app, kafka
from tacit.dashboard.routes import local


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    """Never started (no lifespan): the alert monitor does not run, and no page reaches the database."""
    return TestClient(create_app(TacitSettings(data_dir=tmp_path), make_engine("sqlite://")))


def test_plotly_and_health_need_no_key(client: TestClient) -> None:
    script = client.get("/static/plotly.min.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert "plotly.js" in script.text[:2000]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_script_without_a_key_gets_json_and_a_browser_the_sign_in_form(client: TestClient) -> None:
    script = client.get("/models")
    assert script.status_code == 401 and "tacit keys create" in script.json()["detail"]
    browser = client.get("/models?x=1", headers={"Accept": "text/html"})
    assert browser.status_code == 401 and 'name="then" value="/models?x=1"' in browser.text


def test_sign_in_only_redirects_to_this_site() -> None:
    assert local("/followups/7") == "/followups/7"
    assert [local(path) for path in ("//evil.example", "/\\\\evil.example", "https://evil.example")] == ["/"] * 3


def test_without_kafka_the_dashboard_still_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TACIT_KAFKA_BOOTSTRAP", raising=False)
    assert kafka(TacitSettings(data_dir=tmp_path)) is None
    assert kafka(TacitSettings(data_dir=tmp_path, kafka_bootstrap="broker:9092")) == "broker:9092"
