"""Satisfaction alerts: has the dissatisfied share of an assistant model (or a whole tenant) risen?

Each check compares the share of follow-ups rated 1-2 in the current window with the window before it, by a
one-sided two-proportion z-test. A rise is an alert only when both windows have enough labels, the test is
significant, and the share rose by a margin that matters; a significant rise of half a point on a million
labels is not worth waking anyone. Raised alerts are gauges for Prometheus, a banner on the dashboard, and an
optional webhook, signed so that the receiver can tell it came from this Tacit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry, Gauge
from scipy.stats import norm
from sqlalchemy.engine import Connection
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from tacit.core.settings import TacitSettings
from tacit.dashboard import queries
from tacit.dashboard.queries import Window

log = logging.getLogger(__name__)

ALL_MODELS = "(all models)"
SIGNATURE_HEADER = "X-Tacit-Signature"
EXAMPLES = 3


@dataclass(frozen=True)
class Shares:
    """Dissatisfied labels and all labels of one window."""

    low: int
    n: int

    @property
    def share(self) -> float:
        return self.low / self.n if self.n else 0.0


def rise_p_value(current: Shares, previous: Shares) -> float:
    """One-sided p-value that the current dissatisfied share is no higher than the previous one
    (two-proportion z-test with the pooled share); 1.0 when there is nothing to compare."""
    pooled = (current.low + previous.low) / (current.n + previous.n) if current.n and previous.n else 0.0
    if pooled in (0.0, 1.0):
        return 1.0
    error = math.sqrt(pooled * (1 - pooled) * (1 / current.n + 1 / previous.n))
    return float(norm.sf((current.share - previous.share) / error))


@dataclass(frozen=True)
class Verdict:
    """One model's (or the tenant's) two windows and what the test says about them."""

    tenant: str
    model: str
    start: datetime  # of the current window; the previous one is as long and ends at ``start``
    end: datetime
    current: Shares
    previous: Shares  # what ``current`` is compared with, as ``against`` says
    against: str
    p_value: float
    raised: bool
    examples: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        """The webhook's JSON body."""
        body = asdict(self)
        body.update(start=self.start.isoformat(), end=self.end.isoformat(),
                    current_share=self.current.share, previous_share=self.previous.share)
        return body


def judge(current: Shares, previous: Shares, settings: TacitSettings) -> tuple[float, bool]:
    """The p-value of the rise, and whether it makes an alert under the settings' thresholds."""
    p_value = rise_p_value(current, previous)
    enough = min(current.n, previous.n) >= settings.dashboard_alert_min_count
    risen = current.share - previous.share >= settings.dashboard_alert_min_increase
    return p_value, enough and risen and p_value < settings.dashboard_alert_p_value


def check(conn: Connection, tenant: str, now: datetime, settings: TacitSettings) -> list[Verdict]:
    """Every assistant model of ``tenant`` and the tenant as a whole, judged at ``now``."""
    length = timedelta(hours=settings.dashboard_alert_window_hours)
    current = _shares(conn, Window(tenant, now - length, now))
    previous = _shares(conn, Window(tenant, now - 2 * length, now - length))
    verdicts = []
    for model in sorted(current, key=lambda name: (name == ALL_MODELS, name)):  # the tenant's total last
        before, against = baseline(model, previous, settings)
        p_value, raised = judge(current[model], before, settings)
        examples = _examples(conn, tenant, model) if raised else []
        verdicts.append(Verdict(tenant, model, now - length, now, current[model], before, against, p_value,
                                raised, examples))
    return verdicts


def baseline(model: str, previous: dict[str, Shares], settings: TacitSettings) -> tuple[Shares, str]:
    """What a model's current window is compared with, and how to say it: its own previous window; for a
    model too new to have enough labels there (a release), the previous window of all models, i.e. what the
    tenant's users had before it replaced them."""
    own = previous.get(model, Shares(0, 0))
    if own.n >= settings.dashboard_alert_min_count or model == ALL_MODELS:
        return own, "the window before"
    return previous.get(ALL_MODELS, Shares(0, 0)), "the window before, all models (those it replaced)"


def _shares(conn: Connection, window: Window) -> dict[str, Shares]:
    rows = queries.dissatisfied_by_model(conn, window)
    shares = {row.model: Shares(row.low, row.n) for row in rows}
    if shares:
        shares[ALL_MODELS] = Shares(sum(s.low for s in shares.values()), sum(s.n for s in shares.values()))
    return shares


def _examples(conn: Connection, tenant: str, model: str) -> list[str]:
    rows = queries.dissatisfied_followups(conn, tenant, limit=EXAMPLES,
                                          model=None if model == ALL_MODELS else model)
    return [row.followup for row in rows]


class AlertGauges:
    """The alerts as Prometheus gauges, one series per tenant and model; the alert rule fires on ``== 1``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.raised = Gauge("tacit_satisfaction_alert", "1 while the dissatisfied share has risen significantly.",
                            ["tenant", "model"], registry=registry)
        self.share = Gauge("tacit_dissatisfied_share", "Share of follow-ups rated 1-2 in the current window.",
                           ["tenant", "model"], registry=registry)

    def update(self, verdicts: list[Verdict]) -> None:
        for verdict in verdicts:
            self.raised.labels(verdict.tenant, verdict.model).set(int(verdict.raised))
            self.share.labels(verdict.tenant, verdict.model).set(verdict.current.share)


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Tacit-Signature``: ``sha256=`` and the HMAC-SHA256 of the exact body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """POSTs each alert as JSON, retried with exponential backoff on connection errors and 5xx answers."""

    def __init__(self, url: str, secret: str | None, retries: int, wait_s: float = 1.0) -> None:
        self.url, self.secret = url, secret
        self.send = retry(stop=stop_after_attempt(retries + 1), reraise=True,
                          wait=wait_exponential(multiplier=wait_s, max=30 * wait_s),
                          retry=retry_if_exception(_retryable))(self._send_once)

    def _send_once(self, verdict: Verdict) -> None:
        body = json.dumps(verdict.payload(), default=str).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        response = httpx.post(self.url, content=body, headers=headers, timeout=10)
        response.raise_for_status()


def _retryable(error: BaseException) -> bool:
    """A connection error or a server error may pass; a 4xx (a wrong URL, a refused signature) will not."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.is_server_error
    return isinstance(error, httpx.TransportError)


class Monitor:
    """Checks tenants, keeps the gauges current, and posts an alert when it is *newly* raised (not on every
    check while it lasts)."""

    def __init__(self, settings: TacitSettings, gauges: AlertGauges) -> None:
        self.settings, self.gauges = settings, gauges
        self.webhook = None
        if settings.dashboard_alert_webhook_url is not None:
            secret = settings.dashboard_alert_webhook_secret
            self.webhook = Webhook(settings.dashboard_alert_webhook_url,
                                   secret.get_secret_value() if secret else None,
                                   settings.dashboard_alert_webhook_retries)
        self._raised: set[tuple[str, str]] = set()

    def run_once(self, conn: Connection, tenants: list[str], now: datetime) -> list[Verdict]:
        """Judge every tenant; returns the alerts raised since the last check."""
        new = []
        for tenant in tenants:
            verdicts = check(conn, tenant, now, self.settings)
            self.gauges.update(verdicts)
            for verdict in verdicts:
                key = (verdict.tenant, verdict.model)
                if verdict.raised and key not in self._raised:
                    new.append(verdict)
                (self._raised.add if verdict.raised else self._raised.discard)(key)
        for verdict in new:
            self._notify(verdict)
        return new

    def _notify(self, verdict: Verdict) -> None:
        if self.webhook is None:
            return
        try:
            self.webhook.send(verdict)
        except httpx.HTTPError as error:
            log.warning("alert webhook %s failed after retries: %s", self.webhook.url, error)
