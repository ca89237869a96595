"""The Faust application of the stream worker (``tacit worker``)."""

from __future__ import annotations

import faust

from ingest.agents import register_agent
from ingest.sink import PostgresSink
from ingest.transport import App
from labelers.base import get_labeler
from tacit.db import make_engine
from tacit.kafka import ensure_topics
from tacit.settings import TacitSettings


def create_app(settings: TacitSettings, kafka_bootstrap: str, database_url: str) -> faust.App:
    """A worker app on the given endpoints; scale out by starting more workers (up to ``partitions``)."""
    app = App(
        settings.worker_app_id,
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",  # table state lives in the changelog topic and is rebuilt from it on start
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        # No standby copies of tables: on Tansu, a worker given a standby changelog partition stopped
        # processing its own (found by the two-worker crash test, cause inside Faust not pinned down). With
        # the in-memory store a standby only shortens a failover; recovery from the changelog is complete.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # Timings that keep group membership stable on Tansu (and are fine on Kafka).
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=20,
        web_enabled=False,
        autodiscover=False,
    )
    register_agent(app, settings, PostgresSink(make_engine(database_url)), get_labeler(settings.labeler))
    return app


def run_worker(settings: TacitSettings, kafka_bootstrap: str, database_url: str, loglevel: str = "info") -> None:
    """Run until SIGINT/SIGTERM; offsets of stored batches are committed, the rest is redelivered."""
    ensure_topics(kafka_bootstrap, settings)  # with their partition counts, before Faust could auto-create them
    app = create_app(settings, kafka_bootstrap, database_url)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
