"""``tacit gateway``: chat apps POST their messages over HTTP, the gateway puts them on the chat-events topic.

``POST /v1/events`` takes one chat event, a list of them, or ``{"events": [...]}``, with a tenant's API key.
The answer says, per event, what happened, and nothing is ever lost without saying so:

- An event may leave out its tenant: it is the key's. An event naming another tenant makes the whole
  request a 403, since a key only ever writes its own tenant.
- Validation is all or nothing: one invalid event makes the request a 422 that lists every invalid event
  with its reasons, and nothing is sent, so a client never has to work out which events went through.
- A 202 comes only once Kafka acknowledged every event (``acks=all``), with each one's partition and offset.
  If Kafka fails, the answer is a 503 that lists which events were accepted and which were not. Sending the
  whole batch again is safe: the worker stores a message once per (tenant, conversation, turn).

``POST /v1/feedback`` takes feedback signals (thumbs, reactions, regenerations, edits, copies, ratings) the
same ways (one, a list, or ``{"signals": [...]}``), with the same keys, limits and answers; they go on the
same topic under the same key, so a conversation's messages and signals stay in one partition. Sending
signals again is safe when they carry their own ``event_id``: the worker stores a signal once per
(tenant, conversation, message turn, event id), and the gateway draws a fresh id for one without.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tacit.core.api_auth import KeyTenant, rate_limiter
from tacit.core.api_limits import BodyLimit
from tacit.core.apikeys import KeyVerifier
from tacit.core.db import make_engine
from tacit.core.domain import SIGNAL, ChatEvent, KeyedEvent, Signal, describe_validation_error
from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.kafka import client_options
from tacit.core.settings import TacitSettings
from tacit.ingest.events import encode_event

PARTITIONER = DefaultPartitioner()  # the producer's own: an event lands where any producer would put it


@lru_cache(maxsize=2**16)
def _partition(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partitioner's choice, remembered: its hash is pure Python, and a conversation sends many events."""
    return PARTITIONER(key, list(partitions), list(partitions))


Placed = tuple["asyncio.Task[RecordMetadata]", int]  # the delivery of a record's batch, its place in the batch


class SharedBatches:
    """One open record batch per partition, filled by concurrent requests together and sent whole.

    aiokafka's ``send`` costs a future, a partitioner call and a queue lookup per event, a third of the
    gateway's busy time; here a batch costs the future and the lookup once, and a key its partition once.
    A batch per request would not do: aiokafka keeps one produce request in flight per broker, each with one
    batch per partition, so requests must share batches as ``send`` shares its own. A batch takes records
    until the sender takes it (or it is full).
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self._open: dict[int, tuple[BatchBuilder, asyncio.Task[RecordMetadata]]] = {}

    async def add(self, records: list[tuple[bytes, bytes]]) -> list[Placed]:
        """Queue ``(key, value)`` records in order; where each went, to await its acknowledgement."""
        partitions = tuple(sorted(await self.producer.partitions_for(self.topic)))
        return [self._append(_partition(key, partitions), key, value) for key, value in records]

    def _append(self, partition: int, key: bytes, value: bytes) -> Placed:
        batch, delivery = self._open.get(partition, (None, None))
        place = batch.append(key=key, value=value, timestamp=None) if batch is not None else None
        if place is None:  # no open batch, or it is full, or the sender took it
            batch = self.producer.create_batch()
            place = batch.append(key=key, value=value, timestamp=None)  # a batch takes its first whatever its size
            delivery = asyncio.ensure_future(self._submit(batch, partition))
            self._open[partition] = (batch, delivery)
        return delivery, place.offset

    async def _submit(self, batch: BatchBuilder, partition: int) -> RecordMetadata:
        return await (await self.producer.send_batch(batch, self.topic, partition=partition))


class EventBatch(BaseModel):
    events: list[ChatEvent]


class SignalBatch(BaseModel):
    signals: list[Signal]


@dataclass(frozen=True)
class Route:
    """What ``/v1/events`` and ``/v1/feedback`` differ in; reading, checking and sending are shared."""

    noun: str  # what the items are called in answers, and the key of the ``{noun: [...]}`` body
    one: str  # one item, for people
    validate: Callable[[dict], KeyedEvent]
    schema: dict[str, Any]  # the documented body; the handler parses it itself, to answer 400/413/422


def _schema(body: Any) -> dict[str, Any]:
    return TypeAdapter(body).json_schema(ref_template="#/components/schemas/{model}")


EVENTS = Route("events", "an event", ChatEvent.model_validate, _schema(ChatEvent | list[ChatEvent] | EventBatch))
SIGNALS = Route("signals", "a signal", SIGNAL.validate_python, _schema(Signal | list[Signal] | SignalBatch))
REQUEST_DEFINITIONS = EVENTS.schema.pop("$defs") | SIGNALS.schema.pop("$defs")


class ItemResult(BaseModel):
    index: int
    status: Literal["accepted", "invalid", "forbidden", "failed"]
    partition: int | None = None
    offset: int | None = None
    error: str | None = None


class EventsResponse(BaseModel):
    detail: str
    results: list[ItemResult]


class GatewayMetrics:
    """One registry per app, so that several apps in one process (tests, benchmarks) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("tacit_gateway_events", "Events by outcome.", ["outcome"], registry=self.registry)
        self.responses = Counter("tacit_gateway_responses", "Answers by HTTP status.", ["status"],
                                 registry=self.registry)

    def count(self, results: list[ItemResult]) -> None:
        for result in results:
            self.events.labels(result.status).inc()


class CountResponses:
    """Counts answers by HTTP status, as a plain ASGI middleware: Starlette's ``@app.middleware("http")`` runs
    each request in a task of its own and streams the answer through it, a measurable share of a request."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app, self.counter = app, counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counter.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)


def create_app(settings: TacitSettings, keys: KeyVerifier, bootstrap: str) -> FastAPI:
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No idempotence: Tansu does not support it, and a duplicate is harmless downstream (see above).
        # Batches of up to 512 KiB: a request's events (kilobytes each) then go out in one record batch per
        # partition instead of one per 16 KiB (aiokafka's default).
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, max_batch_size=512 * 1024,
            request_timeout_ms=int(settings.gateway_kafka_timeout_s * 1000), **client_options(settings),
        )
        try:
            await producer.start()
        except KafkaError as error:
            raise TacitError(f"Cannot reach Kafka at {bootstrap} ({error}): start it with `tacit stack up`, "
                             "or set TACIT_KAFKA_BOOTSTRAP.") from error
        app.state.batches = SharedBatches(producer, settings.chat_events_topic)
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(title="Tacit ingest gateway", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.gateway_max_body_bytes, setting="TACIT_GATEWAY_MAX_BODY_BYTES")
    app.state.api_keys = keys
    app.state.rate_limiter = rate_limiter(settings.api_rate_per_second, settings.api_rate_burst, metrics.registry)

    app.add_middleware(CountResponses, counter=metrics.responses)

    async def accept(request: Request, tenant: str, route: Route) -> JSONResponse:
        """Read, check and send one request's items: all of them, or none and why."""
        noun = route.noun
        items = _items(await request.body(), settings.gateway_max_batch, route)
        events, refused = _check(items, tenant, route)
        if refused:
            metrics.count(refused)
            forbidden = any(result.status == "forbidden" for result in refused)
            code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_422_UNPROCESSABLE_CONTENT
            reason = f"this key writes tenant {tenant!r} only" if forbidden else f"invalid {noun}"
            return _answer(code, f"{len(refused)} of {len(items)} {noun} refused ({reason}); none sent", refused)
        results = await _produce(request.app.state.batches, events)
        metrics.count(results)
        accepted = sum(result.status == "accepted" for result in results)
        if accepted < len(results):
            return _answer(status.HTTP_503_SERVICE_UNAVAILABLE,
                           f"Kafka accepted {accepted} of {len(results)} {noun}; send the others again", results)
        return _answer(status.HTTP_202_ACCEPTED, f"{accepted} {noun} accepted", results)

    @app.post("/v1/events", **_documented(EVENTS))
    async def post_events(request: Request, tenant: KeyTenant) -> JSONResponse:
        """Put chat events (the tenant may be left out: it is the key's) on the chat-events topic."""
        return await accept(request, tenant, EVENTS)

    @app.post("/v1/feedback", **_documented(SIGNALS))
    async def post_feedback(request: Request, tenant: KeyTenant) -> JSONResponse:
        """Put feedback signals on assistant messages (thumbs, reactions, regenerations, edits, copies,
        ratings) on the chat-events topic, keyed like the conversation's messages."""
        return await accept(request, tenant, SIGNALS)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, plus the models that the hand-parsed request body refers to."""
        if app.openapi_schema is None:
            FastAPI.openapi(app)["components"]["schemas"].update(REQUEST_DEFINITIONS)
        return app.openapi_schema

    app.openapi = openapi
    return app


def _documented(route: Route) -> dict[str, Any]:
    """The route's OpenAPI description: its body and every answer it may give."""
    noun = route.noun
    return {
        "status_code": status.HTTP_202_ACCEPTED,
        "response_model": EventsResponse,
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": route.schema}}}},
        "responses": {
            400: {"description": "The body is not JSON."},
            401: {"description": "No key, or not a valid one."},
            403: {"model": EventsResponse, "description": f"A revoked key, or {noun} of another tenant."},
            413: {"description": f"Too many {noun}, or too large a body."},
            422: {"model": EventsResponse, "description": f"Invalid {noun}, each with its reasons; none sent."},
            503: {"model": EventsResponse, "description": f"Kafka failed: which {noun} were accepted, which not."},
        },
    }


def _items(body: bytes, max_batch: int, route: Route) -> list[Any]:
    """One item, a list, or ``{"<noun>": [...]}``, as a list of raw items."""
    noun = route.noun
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # also invalid UTF-8
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"The body is not JSON: {error}") from None
    if isinstance(payload, dict) and payload.keys() == {noun}:
        payload = payload[noun]
        if not isinstance(payload, list):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"'{noun}' must be a list of {noun}.")
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"The batch holds no {noun}.")
    if len(items) > max_batch:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{len(items)} {noun} in one request; send at most {max_batch} (TACIT_GATEWAY_MAX_BATCH).")
    return items


def _check(items: list[Any], tenant: str, route: Route) -> tuple[list[KeyedEvent], list[ItemResult]]:
    """The valid items of ``tenant``, and a result for every item that is not one."""
    events, refused = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            refused.append(ItemResult(index=index, status="invalid",
                                      error=f"{route.one} must be a JSON object, not {type(item).__name__}"))
            continue
        claimed = item.setdefault("tenant", tenant)
        if claimed != tenant:
            refused.append(ItemResult(index=index, status="forbidden",
                                      error=f"tenant {claimed!r} is not the key's tenant {tenant!r}"))
            continue
        try:
            events.append(route.validate(item))
        except ValidationError as error:
            refused.append(ItemResult(index=index, status="invalid", error=describe_validation_error(error)))
    return events, refused


async def _produce(batches: SharedBatches, events: list[KeyedEvent]) -> list[ItemResult]:
    """Send in order (a conversation's messages stay in order) and wait for every acknowledgement."""
    placed = await batches.add([encode_event(event) for event in events])
    deliveries = list(dict.fromkeys(delivery for delivery, _ in placed))
    # Shielded: a client that hangs up must not cancel a batch that other requests' events share.
    outcomes = await asyncio.gather(*map(asyncio.shield, deliveries), return_exceptions=True)
    outcome_of = dict(zip(deliveries, outcomes))
    return [_delivered(index, outcome_of[delivery], position)
            for index, (delivery, position) in enumerate(placed)]


def _delivered(index: int, outcome: RecordMetadata | BaseException, position: int) -> ItemResult:
    """The result of the record at ``position`` in a batch; the batch's metadata holds its first offset."""
    if isinstance(outcome, BaseException):
        return ItemResult(index=index, status="failed", error=f"not acknowledged: {outcome!r}")
    return ItemResult(index=index, status="accepted", partition=outcome.partition, offset=outcome.offset + position)


def _answer(code: int, detail: str, results: list[ItemResult]) -> JSONResponse:
    body = EventsResponse(detail=detail, results=results).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=code)


def run(settings: TacitSettings, host: str | None = None, port: int | None = None) -> None:
    """Serve the gateway until interrupted; host and port default to the settings."""
    keys = KeyVerifier(make_engine(endpoint(settings, "postgres")), settings.api_key_cache_s)
    app = create_app(settings, keys, endpoint(settings, "kafka"))
    uvicorn.run(app, host=host or settings.gateway_host, port=settings.gateway_port if port is None else port)
