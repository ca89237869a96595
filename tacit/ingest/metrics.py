"""What a stream worker tells Prometheus, served on ``worker_metrics_port``.

The counters follow a record through the agent (in, candidates, labeled, rejected); the sink histogram is the
time one batch spends in the labeler and the database, the part that backs up when either is slow; lag is
per partition, from the high watermark of the last fetch, so it is right on Tansu too.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tacit.core.llm import UNPARSEABLE_ANSWERS

log = logging.getLogger(__name__)

SINK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter("tacit_worker_events", "Chat-event records read.", registry=self.registry)
        self.candidates = Counter("tacit_worker_candidates", "Feedback candidates (user follow-ups) found.",
                                  registry=self.registry)
        self.labeled = Counter("tacit_worker_labeled", "Candidates labeled and stored, by level.", ["level"],
                               registry=self.registry)
        self.rejected = Counter("tacit_worker_rejected", "Records dead-lettered.", registry=self.registry)
        self.sink_seconds = Histogram("tacit_worker_sink_seconds", "Labeling and writing of one batch.",
                                      buckets=SINK_BUCKETS, registry=self.registry)
        self.sink_retries = Counter("tacit_worker_sink_retries", "Batches that had to be written again.",
                                    registry=self.registry)
        self.lag = Gauge("tacit_worker_consumer_lag", "Records behind the end of the partition.", ["partition"],
                         registry=self.registry)
        self.registry.register(UNPARSEABLE_ANSWERS)  # the LLM labeler's and refusal validator's, if configured

    def serve(self, port: int | None, host: str = "127.0.0.1") -> None:
        """Expose /metrics; a port already taken (a second worker on this host) costs the endpoint, not the worker."""
        if port is None:
            return
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.warning("no /metrics for this worker: port %d: %s (set TACIT_WORKER_METRICS_PORT to a free port)",
                        port, exc)
            return
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
