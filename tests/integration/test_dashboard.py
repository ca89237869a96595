"""The dashboard on a store filled by a real replay and worker: keys, tenants, numbers, alerts, webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr
from sqlalchemy import text

from tacit.core import apikeys
from tacit.dashboard import alerts, queries
from tacit.dashboard.alerts import AlertGauges, Monitor
from tacit.devstack.processes import tacit_child
from tacit.devstack.stack import free_port
from tests.helpers import wait_until
from tests.helpers.dashboard import CORRECTION, RIVAL_FOLLOWUP, DashboardStore

pytestmark = pytest.mark.integration

PAGES = ("/", "/labels", "/followups", "/models", "/operations")


def get(url: str, path: str, key: str | None = None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.get(url + path, headers=headers, timeout=30)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_valid_key(dashboard_url: str, dashboard_store: DashboardStore, path: str) -> None:
    assert get(dashboard_url, path).status_code == 401
    assert get(dashboard_url, path, "tk_000000000000_" + "x" * 43).status_code == 401
    browser = get(dashboard_url, path, Accept="text/html")
    assert browser.status_code == 401 and 'name="key"' in browser.text  # the sign-in form
    assert get(dashboard_url, path, dashboard_store.keys["acme"]).status_code == 200


def test_a_read_only_token_signs_in(dashboard_url: str, dashboard_store: DashboardStore) -> None:
    _, token = apikeys.create(dashboard_store.engine, "acme", "a viewer", read_only=True)
    assert get(dashboard_url, "/models", token).status_code == 200


def test_a_browser_signs_in_with_a_form_and_keeps_a_cookie(dashboard_url: str,
                                                           dashboard_store: DashboardStore) -> None:
    with httpx.Client(base_url=dashboard_url, timeout=30) as browser:
        assert browser.post("/login", data={"key": "wrong"}).status_code == 401
        signed_in = browser.post("/login", data={"key": dashboard_store.keys["acme"]}, follow_redirects=True)
        assert signed_in.status_code == 200 and "tenant <b>acme</b>" in signed_in.text
        browser.post("/logout")
        assert browser.get("/").status_code == 401


def test_a_shared_link_leads_to_its_page_after_signing_in(dashboard_url: str,
                                                          dashboard_store: DashboardStore) -> None:
    with httpx.Client(base_url=dashboard_url, timeout=30, headers={"Accept": "text/html"}) as browser:
        form = browser.get("/followups?model=model-b")
        assert form.status_code == 401 and 'name="then" value="/followups?model=model-b"' in form.text
        arrived = browser.post("/login", data={"key": dashboard_store.keys["acme"], "then": "/followups?model=model-b"})
        assert (arrived.status_code, arrived.headers["location"]) == (303, "/followups?model=model-b")
        elsewhere = browser.post("/login", data={"key": dashboard_store.keys["acme"], "then": "//evil.example/"})
        assert elsewhere.headers["location"] == "/"


def sql_totals(store: DashboardStore, tenant: str) -> tuple[int, int, int]:
    """Labels, 1-2 and 4-5 of a tenant, counted by hand-written SQL rather than the dashboard's queries."""
    with store.engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT count(*), count(*) FILTER (WHERE level <= 2), count(*) FILTER (WHERE level >= 4) "
            "FROM feedback WHERE tenant = :tenant AND stage IN ('refined', 'filtered')"), {"tenant": tenant}).one())


def test_satisfaction_numbers_match_sql(dashboard_url: str, dashboard_store: DashboardStore) -> None:
    n, low, high = sql_totals(dashboard_store, "acme")
    page = get(dashboard_url, "/", dashboard_store.keys["acme"]).text
    assert n == 170 and f"{n} labelled follow-ups" in page
    assert f"{low} at levels 1–2, {high} at levels 4–5" in page
    only_b = get(dashboard_url, "/?model=model-b", dashboard_store.keys["acme"]).text
    assert "80 labelled follow-ups" in only_b and "60 at levels 1–2, 20 at levels 4–5" in only_b


def test_a_tenant_sees_none_of_another_tenants_data(dashboard_url: str, dashboard_store: DashboardStore) -> None:
    rival = dashboard_store.keys["rival"]
    n, _, _ = sql_totals(dashboard_store, "rival")
    assert f"{n} labelled follow-ups" in get(dashboard_url, "/", rival).text
    followups = get(dashboard_url, "/followups", rival).text
    assert RIVAL_FOLLOWUP in followups and CORRECTION not in followups and "model-b" not in followups
    acme_page = get(dashboard_url, "/followups", dashboard_store.keys["acme"]).text
    acme_item = acme_page.split('href="/followups/', 1)[1].split('"', 1)[0]
    assert get(dashboard_url, f"/followups/{acme_item}", dashboard_store.keys["acme"]).status_code == 200
    assert get(dashboard_url, f"/followups/{acme_item}", rival).status_code == 404
    assert "model-a" not in get(dashboard_url, "/labels", rival).text + get(dashboard_url, "/", rival).text
    with dashboard_store.engine.connect() as conn:
        stored = {tenant: queries.messages_stored(conn, tenant, datetime(2000, 1, 1, tzinfo=UTC))
                  for tenant in ("acme", "rival")}
    assert stored == {"acme": 85 * 5, "rival": 10 * 5}


def test_dissatisfied_followups_are_paged_by_links(dashboard_url: str, dashboard_store: DashboardStore) -> None:
    key = dashboard_store.keys["acme"]
    first = get(dashboard_url, "/followups", key).text
    older = first.split('id="older" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = get(dashboard_url, older, key).text
    ids = lambda page: set(page.split('<tr id="f')[1:])
    assert first.count('<tr id="f') == second.count('<tr id="f') == 20 and not ids(first) & ids(second)


def test_the_model_corrected_more_often_raises_an_alert(dashboard_url: str, dashboard_store: DashboardStore) -> None:
    with dashboard_store.engine.connect() as conn:
        verdicts = {v.model: v for v in alerts.check(conn, "acme", datetime.now(UTC), dashboard_store.settings)}
    assert verdicts["model-b"].raised and not verdicts["model-a"].raised
    assert (verdicts["model-b"].current, verdicts["model-b"].previous) == (alerts.Shares(40, 40),
                                                                            alerts.Shares(20, 40))
    assert verdicts["model-b"].examples == [CORRECTION] * 3
    banner = get(dashboard_url, "/", dashboard_store.keys["acme"]).text
    assert "Satisfaction alert: model-b" in banner and "40 of 40 follow-ups dissatisfied" in banner
    assert "Satisfaction alert" not in get(dashboard_url, "/", dashboard_store.keys["rival"]).text


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that fails its first request, then records the bodies and signatures it gets."""

    received: ClassVar[list[tuple[bytes, str]]] = []
    failures = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.failures:
            Receiver.failures -= 1
            self.send_response(503)
        else:
            Receiver.received.append((body, self.headers[alerts.SIGNATURE_HEADER]))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    thread.join()


def test_a_new_alert_is_posted_once_signed_and_retried(dashboard_store: DashboardStore, receiver: str) -> None:
    settings = dashboard_store.settings.model_copy(update={
        "dashboard_alert_webhook_url": receiver, "dashboard_alert_webhook_secret": SecretStr("s3cret")})
    registry = CollectorRegistry()
    monitor = Monitor(settings, AlertGauges(registry))
    assert (monitor.webhook.url, monitor.webhook.secret) == (receiver, "s3cret")
    monitor.webhook = alerts.Webhook(receiver, "s3cret", retries=3, wait_s=0)  # the same, without backoff
    with dashboard_store.engine.connect() as conn:
        first = monitor.run_once(conn, ["acme", "rival"], datetime.now(UTC))
        again = monitor.run_once(conn, ["acme", "rival"], datetime.now(UTC) + timedelta(seconds=1))
    assert {v.model for v in first} == {"model-b", alerts.ALL_MODELS} and again == []
    assert len(Receiver.received) == 2  # the first POST failed (503) and was retried
    for body, signature in Receiver.received:
        assert signature == alerts.signature("s3cret", body)
    assert {json.loads(body)["model"] for body, _ in Receiver.received} == {"model-b", alerts.ALL_MODELS}
    exposition = generate_latest(registry).decode()
    assert 'tacit_satisfaction_alert{model="model-b",tenant="acme"} 1.0' in exposition
    assert 'tacit_satisfaction_alert{model="model-a",tenant="acme"} 0.0' in exposition


def signed_in_page(url: str, key: str) -> bool:
    try:
        return httpx.get(url, headers={"X-API-Key": key}, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_the_command_serves_the_dashboard(dashboard_store: DashboardStore, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dashboard_store.settings
    port = free_port()
    monkeypatch.setenv("TACIT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TACIT_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    log = settings.data_dir / "logs" / "dashboard.log"
    with tacit_child(settings, "dashboard", "--port", str(port), log=log):
        wait_until(lambda: signed_in_page(f"http://127.0.0.1:{port}/operations", dashboard_store.keys["acme"]),
                   "tacit dashboard to answer", log, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}  # needs no key
