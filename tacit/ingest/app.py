"""The Faust application of the stream worker (``tacit worker``)."""

from __future__ import annotations

import faust
from sqlalchemy.engine import Engine

from tacit.core.db import USER_ID_SECRET, install_secret, make_engine
from tacit.core.kafka import credentials, ensure_topics
from tacit.core.privacy import Privacy
from tacit.core.settings import TacitSettings
from tacit.ingest.agents import ChatEventsAgent
from tacit.ingest.metrics import WorkerMetrics
from tacit.ingest.sink import PostgresSink
from tacit.ingest.store import PendingStore
from tacit.ingest.transport import App
from tacit.labels import get_labeler
from tacit.refine.mining import Miner


def faust_app(settings: TacitSettings, kafka_bootstrap: str, app_id: str) -> faust.App:
    """A Faust app configured for this pipeline, with no agents yet (``bench/stream.py`` adds a bare one)."""
    return App(
        app_id,
        broker=f"kafka://{kafka_bootstrap}",
        broker_credentials=credentials(settings),
        topic_replication_factor=settings.kafka_replication_factor,
        store="memory://",  # table state lives in the changelog topic and is rebuilt from it on start
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        # No standby copies of tables: on Tansu, a worker given a standby changelog partition stopped
        # processing its own (found by the two-worker crash test, cause inside Faust not pinned down). With
        # the in-memory store a standby only shortens a failover; recovery from the changelog is complete.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # Every table write is a changelog record of a whole conversation window (kilobytes): the defaults
        # (no linger, 16 KiB batches) sent a few records per produce request and made the worker wait on them.
        producer_linger=0.01,
        producer_max_batch_size=512 * 1024,
        # Timings that keep group membership stable on Tansu (and are fine on Kafka).
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=20,
        web_enabled=False,
        autodiscover=False,
    )


def create_app(settings: TacitSettings, kafka_bootstrap: str, database_url: str,
               metrics: WorkerMetrics) -> faust.App:
    """A worker app on the given endpoints; scale out by starting more workers (up to ``partitions``)."""
    app = faust_app(settings, kafka_bootstrap, settings.worker_app_id)
    labeler = get_labeler(settings.labeler, settings)
    engine = make_engine(database_url)
    ChatEventsAgent(app, settings, PostgresSink(engine), PendingStore(engine), labeler,
                    privacy(settings, engine), metrics, Miner.from_settings(settings)).register()
    return app


def privacy(settings: TacitSettings, engine: Engine) -> Privacy:
    """Redaction as configured; user ids pseudonymized with the configured key, else the installation's."""
    if not settings.pseudonymize_user_ids:
        return Privacy(settings.redact_pii, None)
    configured = settings.user_id_secret
    key = configured.get_secret_value().encode() if configured else install_secret(engine, USER_ID_SECRET)
    return Privacy(settings.redact_pii, key)


def run_worker(settings: TacitSettings, kafka_bootstrap: str, database_url: str, loglevel: str = "info") -> None:
    """Run until SIGINT/SIGTERM; offsets of stored batches are committed, the rest is redelivered."""
    ensure_topics(kafka_bootstrap, settings)  # with their partition counts, before Faust could auto-create them
    metrics = WorkerMetrics()
    app = create_app(settings, kafka_bootstrap, database_url, metrics)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that every record spins it: aiokafka and Faust
    # then build a debug log record for every message produced (a tenth of the event loop), never shown.
    worker.spinner = None
    metrics.serve(settings.worker_metrics_port, settings.worker_metrics_host)  # after the Worker set up logging, so its message is seen
    worker.execute_from_commandline()
