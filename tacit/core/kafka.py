"""Kafka topics that Tacit owns, and the true end offsets of their partitions.

Brokers that auto-create topics (Tansu gives them 4 partitions) would break Faust tables, whose changelog
must have exactly as many partitions as the source topic, so every topic is declared here up front.

Tansu answers ListOffsets "latest" with the last *batch's* base offset + 1 instead of the end of the log, so
``end_offsets``, ``seek_to_end`` and Faust's changelog recovery stop short of the last records. The high
watermark in a fetch response is right, so :func:`end_offsets` fetches the last reported record and reads
the watermark that comes back with it (on a correct broker that is the same number).

Every client (the worker's Faust app, the gateway's and replay's producers, the registry's announcements, the
topic admin and the offsets probe) connects with the one security configuration of the settings: Faust
credentials built here, turned into aiokafka options by Faust's own mapping, so no client can differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings

CONVERSATION_TABLE = "conversations"


def credentials(settings: TacitSettings) -> CredentialsT | None:
    """The settings' TLS and SASL configuration as Faust credentials (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                                     keyfile=settings.kafka_ssl_keyfile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        raise TacitError(f"TACIT_KAFKA_SECURITY_PROTOCOL={protocol} needs TACIT_KAFKA_SASL_USERNAME and "
                         "TACIT_KAFKA_SASL_PASSWORD.")
    return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                 password=settings.kafka_sasl_password.get_secret_value(),
                                 mechanism=settings.kafka_sasl_mechanism, ssl_context=context)


def client_options(settings: TacitSettings) -> Mapping[str, Any]:
    """Keyword arguments of every aiokafka client: the same credentials as the Faust app's."""
    return credentials_to_aiokafka_auth(credentials(settings))


def changelog_topic(settings: TacitSettings, table: str) -> str:
    """Faust's naming of a table's changelog topic."""
    return f"{settings.worker_app_id}-{table}-changelog"


def required_topics(settings: TacitSettings) -> dict[str, int]:
    """Topic name -> partitions, for everything the worker reads or writes."""
    partitions = settings.partitions
    return {
        settings.chat_events_topic: partitions,
        settings.dead_letter_topic: partitions,
        changelog_topic(settings, CONVERSATION_TABLE): partitions,
        f"{settings.worker_app_id}-__assignor-__leader": 1,
        settings.model_events_topic: 1,  # one partition: consumers see promotions in the order they happened
    }


async def _ensure_topics(bootstrap: str, settings: TacitSettings) -> list[str]:
    topics = required_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing and not settings.kafka_create_topics:
            raise TacitError(f"Missing Kafka topics {', '.join(missing)} (partitions: "
                             f"{', '.join(str(topics[name]) for name in missing)}); TACIT_KAFKA_CREATE_TOPICS=false "
                             "leaves them to the platform: create them (e.g. Strimzi KafkaTopic resources).")
        configs = ({"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
                   if settings.kafka_min_insync_replicas else {})
        created = [NewTopic(name, topics[name], settings.kafka_replication_factor, topic_configs=configs)
                   for name in missing]
        if created:
            try:
                await admin.create_topics(created)
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, settings: TacitSettings) -> list[str]:
    """Create the missing topics (or, with creation off, fail naming them); returns the names it created."""
    return asyncio.run(_ensure_topics(bootstrap, settings))


async def end_offsets(bootstrap: str | list[str], partitions: Collection[TopicPartition],
                      timeout_s: float = 30.0, options: Mapping[str, Any] | None = None,
                      ) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition, also on Tansu (see the module docstring).

    A probe consumer of its own (no group) does the fetch, so the caller's positions are left alone.
    """
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", **(options or {}))
    await probe.start()
    try:
        probe.assign(list(partitions))
        reported = await probe.end_offsets(list(partitions))
        pending = [tp for tp, end in reported.items() if end > 0]
        for tp in pending:
            probe.seek(tp, reported[tp] - 1)
        async with asyncio.timeout(timeout_s):
            while pending:
                await probe.getmany(*pending, timeout_ms=500)
                pending = [tp for tp in pending if probe.highwater(tp) is None]
        return {tp: max(end, probe.highwater(tp) or 0) for tp, end in reported.items()}
    finally:
        await probe.stop()
