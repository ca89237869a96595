"""What the scoring service tells Prometheus (``GET /metrics``).

One registry per app rather than prometheus-client's global one, so that several apps in one process (tests,
a Ray replica restarted in place) do not collide over metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "tacit_request_seconds", "Time from request to answer.", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.scored_texts = Counter("tacit_scored_texts", "Texts scored.", registry=self.registry)
        self.truncated_texts = Counter(
            "tacit_truncated_texts", "Texts cut to fit the model's max_length.", registry=self.registry
        )
        self.batch_texts = Histogram(
            "tacit_batch_texts", "Texts per model call.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tacit_batch_seconds", "Duration of one model call.", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.padded_tokens = Counter("tacit_padded_tokens", "Tokens fed to the model.", registry=self.registry)
        self.queued_texts = Gauge("tacit_queued_texts", "Texts waiting for a batch.", registry=self.registry)
        self.model_version = Gauge(
            "tacit_model_version", "Registry version being served (-1: a bare checkpoint).", registry=self.registry
        )
        self.swaps = Counter(
            "tacit_model_swaps", "Promotions followed, by outcome.", ["outcome"], registry=self.registry
        )

    def observe_batch(self, texts: int, padded_tokens: int, seconds: float) -> None:
        self.scored_texts.inc(texts)
        self.batch_texts.observe(texts)
        self.padded_tokens.inc(padded_tokens)
        self.batch_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
