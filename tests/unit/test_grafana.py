"""deploy/grafana/tacit.json and deploy/prometheus/tacit-alerts.yaml: every expression names metrics that
Tacit's services really export, with the sample suffix of their type (``_total`` of a counter, ...)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from tacit.core.api_auth import KeyRateLimiter
from tacit.core.llm import UNPARSEABLE_ANSWERS
from tacit.dashboard.alerts import AlertGauges
from tacit.ingest.gateway import GatewayMetrics
from tacit.ingest.metrics import WorkerMetrics
from tacit.serving.metrics import ServiceMetrics

DEPLOY = Path(__file__).parents[2] / "deploy"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
METRIC = re.compile(r"\btacit_[a-z_]+")


def exported() -> set[str]:
    """The sample names a Prometheus scrape of the gateway, workers, scoring service and dashboard shows."""
    dashboard = CollectorRegistry()
    AlertGauges(dashboard)
    KeyRateLimiter(1.0, 1, dashboard)
    registries = [GatewayMetrics().registry, WorkerMetrics().registry, ServiceMetrics().registry, dashboard]
    families = [family for registry in registries for family in registry.collect()]
    families += list(UNPARSEABLE_ANSWERS.collect())
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def grafana_expressions() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "tacit.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "tacit-alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_expression_names_an_exported_metric() -> None:
    names = exported()
    expressions = grafana_expressions() + rule_expressions()
    unknown = {name for expression in expressions for name in METRIC.findall(expression)} - names
    assert expressions and not unknown


def test_the_board_covers_gateway_workers_scoring_and_alerts() -> None:
    used = {name for expression in grafana_expressions() for name in METRIC.findall(expression)}
    for prefix in ("tacit_gateway_", "tacit_worker_", "tacit_request_seconds", "tacit_satisfaction_alert"):
        assert any(name.startswith(prefix) for name in used), prefix
    assert "tacit_satisfaction_alert" in rule_expressions()[0]
