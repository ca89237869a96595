"""The scoring API: ``/v1/score``, ``/v1/compare``, WildReward's ``/get_reward``, health and metrics.

WildReward calls its model inside the async handler, which stalls every other request, health checks
included, for the length of a batch. Here handlers only encode (on a tokenizer thread) and queue their texts;
the micro-batcher (:mod:`tacit.serving.batcher`) runs the model on one dedicated thread, so the event loop stays
free and concurrent requests share model calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from tacit.core.api_auth import api_key_header, authenticate, bearer, rate_limiter
from tacit.core.api_limits import BodyLimit
from tacit.core.apikeys import KeyVerifier
from tacit.core.heads import SATISFACTION
from tacit.core.settings import TacitSettings
from tacit.model.schema import (
    CompareRequest,
    CompareResponse,
    Comparison,
    ModelInfo,
    RewardRequest,
    RewardResponse,
    ScoreRequest,
    ScoreResponse,
    Truncation,
)
from tacit.model.scoring import Scores
from tacit.serving.batcher import BatchLimits, MicroBatcher
from tacit.serving.metrics import ServiceMetrics
from tacit.serving.model import Encoded, ResponseTooLongError, ServedModel
from tacit.serving.swap import ChampionFollower, ModelSlot, ModelSlots

MAX_REPORTED_ERRORS = 20
TRUNCATED_HEADER = "X-Tacit-Truncated"  # /get_reward's body is fixed by its clients; this says which were cut


def batch_limits(settings: TacitSettings) -> BatchLimits:
    return BatchLimits(
        max_texts=settings.serve_batch_size,
        max_tokens=settings.serve_batch_tokens,
        max_wait_s=settings.serve_max_wait_ms / 1000,
    )


@dataclass
class Service:
    """What the routes share, kept on ``app.state.service``: the model slots, the metrics, the threads."""

    slots: ModelSlots
    metrics: ServiceMetrics
    following_champion: bool
    reward_head: str = SATISFACTION  # whose output /get_reward returns
    batcher: MicroBatcher | None = None
    tokenizer: ThreadPoolExecutor | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def encode(self, encode: Callable[[Sequence], list[Encoded]], inputs: Sequence) -> list[Encoded]:
        return await asyncio.get_running_loop().run_in_executor(self.tokenizer, encode, inputs)

    async def score_encoded(
        self, served: ServedModel, encoded: Sequence[Encoded]
    ) -> tuple[Scores, list[Truncation]]:
        truncated = [item.truncation for item in encoded if item.truncation is not None]
        self.metrics.truncated_texts.inc(len(truncated))
        scores = await self.batcher.score(served, [item.features for item in encoded])
        return scores, truncated

    def model(self, tenant: str | None) -> ServedModel:
        """The model of ``tenant``'s champion, else the global one; taken once per request, so a request is
        scored by one model even if a swap happens meanwhile."""
        return self.slots.slot(tenant).current

    async def score_items(self, items: Sequence, tenant: str | None) -> tuple[ServedModel, Scores, list[Truncation]]:
        served = self.model(tenant)
        try:
            encoded = await self.encode(served.encode, items)
        except ResponseTooLongError as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        return served, *await self.score_encoded(served, encoded)


async def service(request: Request) -> Service:
    """Async, so FastAPI calls it on the event loop rather than on a worker thread of its own."""
    return request.app.state.service


Served = Annotated[Service, Depends(service)]


async def caller_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str | None:
    """The tenant of the request's API key, whose champion scores it; None when the service runs without
    keys (every request gets the global champion). FastAPI caches it per request: the router's check and the
    route's parameter are one lookup, counted once by the rate limiter. The check runs on a worker thread,
    because a key missing from the cache is looked up in the database."""
    if request.app.state.api_keys is None:
        return None
    return await run_in_threadpool(authenticate, request, credentials, header_key)


Caller = Annotated[str | None, Depends(caller_tenant)]

scoring = APIRouter()
probes = APIRouter()


@scoring.post("/v1/score")
async def score(request: ScoreRequest, state: Served, tenant: Caller) -> ScoreResponse:
    with state.metrics.request_seconds.labels("/v1/score").time():
        served, scores, truncated = await state.score_items(request.items, tenant)
        return ScoreResponse(
            rewards=scores.rewards,
            level_probabilities=scores.level_probabilities,
            levels=list(served.scorer.spec.levels),
            model_version=served.version,
            truncated=truncated,
            heads=scores.by_head(),
        )


@scoring.post("/v1/compare")
async def compare(request: CompareRequest, state: Served, tenant: Caller) -> CompareResponse:
    with state.metrics.request_seconds.labels("/v1/compare").time():
        items = [item for pair in request.pairs for item in (pair.a, pair.b)]
        served, scores, truncated = await state.score_items(items, tenant)
        rows = scores.level_probabilities
        comparisons = [
            comparison(scores.rewards[i], scores.rewards[i + 1], rows[i], rows[i + 1])
            for i in range(0, len(items), 2)
        ]
        return CompareResponse(comparisons=comparisons, model_version=served.version, truncated=truncated)


@scoring.post("/get_reward")
async def get_reward(request: RewardRequest, state: Served, tenant: Caller) -> JSONResponse:
    with state.metrics.request_seconds.labels("/get_reward").time():
        served = state.model(tenant)
        encoded = await state.encode(served.encode_texts, request.query)
        scores, truncated = await state.score_encoded(served, encoded)
        headers = {TRUNCATED_HEADER: ",".join(str(t.index) for t in truncated)} if truncated else None
        rewards = scores.by_head()[state.reward_head]
        return JSONResponse(RewardResponse(rewards=rewards).model_dump(), headers=headers)


@probes.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about the model (see /readyz)."""
    return {"status": "ok"}


@probes.get("/readyz")
async def readyz(state: Served) -> JSONResponse:
    """Ready while every background task (batcher, follower) runs: a load balancer stops sending
    requests to a replica whose batcher died, instead of letting them hang. A follower must also have read
    the registry once, or a tenant with a champion of its own would be scored by the global one."""
    stopped = [task.get_name() for task in state.tasks if task.done()]
    if stopped:
        return JSONResponse({"status": "not ready", "stopped": stopped}, status_code=503)
    if state.following_champion and not state.slots.followed:
        return JSONResponse({"status": "not ready", "loading": "the tenants' champions"}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": state.slots.default.current.version})


@probes.get("/metrics")
async def prometheus(state: Served) -> Response:
    state.metrics.queued_texts.set(state.batcher.queued_texts)
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


@scoring.get("/v1/model")
async def model_info(state: Served, tenant: Caller) -> ModelInfo:
    """The model the caller's requests get now: its tenant's champion, or the global one (``tenant`` null)."""
    served = state.model(tenant)
    return ModelInfo(
        model_version=served.version,
        tenant=served.tenant,
        following_champion=state.following_champion,
        last_rejected=state.slots.last_rejected(tenant),
        checkpoint=served.scorer.checkpoint.name,  # the name, not where it lies on the server's disk
        layout=served.scorer.spec.layout,
        levels=list(served.scorer.spec.levels),
        max_length=served.max_length,
        device=str(served.scorer.device),
        heads=[SATISFACTION, *served.scorer.spec.heads],
        reward_head=state.reward_head,
    )


def create_app(
    model: ServedModel,
    settings: TacitSettings,
    follower: Callable[[ModelSlots, ServiceMetrics], ChampionFollower] | None = None,
    keys: KeyVerifier | None = None,
) -> FastAPI:
    """Serves ``model``; with a ``follower`` factory, also each champion promoted later, the tenants' own
    included (hot swap). With ``keys``, scoring needs a valid API key, and its tenant picks the model; health,
    readiness and metrics never do (probes carry none)."""
    state = Service(ModelSlots(ModelSlot(model)), ServiceMetrics(), following_champion=follower is not None,
                    reward_head=settings.serve_reward_head)
    state.metrics.model_version.set(-1 if model.version is None else model.version)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread each: the model is not thread-safe, and a fast tokenizer switches truncation on and off
        # in shared state, so concurrent encodes could cut a text that was meant to be measured whole.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-scorer") as executor,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-tokenizer") as state.tokenizer,
        ):
            state.batcher = MicroBatcher(batch_limits(settings), executor, state.metrics.observe_batch)
            state.tasks = [asyncio.create_task(state.batcher.run(), name="tacit-batcher")]
            if follower is not None:
                state.tasks.append(asyncio.create_task(follower(state.slots, state.metrics).run(),
                                                       name="tacit-follower"))
            try:
                yield
            finally:
                for task in state.tasks:
                    task.cancel()
                await asyncio.gather(*state.tasks, return_exceptions=True)

    app = FastAPI(title="Tacit scoring service", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.serve_max_body_bytes, setting="TACIT_SERVE_MAX_BODY_BYTES")
    app.add_exception_handler(RequestValidationError, refuse_invalid_request)
    app.state.service = state
    app.state.api_keys = keys
    app.state.rate_limiter = rate_limiter(settings.api_rate_per_second, settings.api_rate_burst,
                                          state.metrics.registry)
    app.include_router(scoring, dependencies=[Depends(caller_tenant)])
    app.include_router(probes)
    return app


async def refuse_invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming each invalid field and why, without echoing its value: FastAPI's default returns every
    rejected input whole (a megabyte in, a megabyte out), and one that is not valid UTF-8 cannot be
    encoded into the response at all."""
    detail = [{"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]} for item in error.errors()]
    return JSONResponse({"detail": detail[:MAX_REPORTED_ERRORS]}, status_code=422)


def comparison(reward_a: float, reward_b: float, levels_a: list[float], levels_b: list[float]) -> Comparison:
    """The probability that a user is more satisfied with ``a`` than with ``b``, from the two level
    distributions taken as independent, ties split evenly: calibrated where the levels are, unlike a
    sigmoid of the reward margin, whose scale nothing fixes. Rows are renormalized because an independent
    (non-CORAL) head's clipped level probabilities need not sum to one."""
    levels_a, levels_b = _normalized(levels_a), _normalized(levels_b)
    above = sum(pa * pb for i, pa in enumerate(levels_a) for pb in levels_b[:i])
    tied = sum(pa * pb for pa, pb in zip(levels_a, levels_b, strict=True))
    probability_a = above + tied / 2
    better_a = probability_a >= 0.5
    return Comparison(
        better="a" if better_a else "b",
        probability=probability_a if better_a else 1 - probability_a,
        reward_a=reward_a,
        reward_b=reward_b,
    )


def _normalized(probabilities: list[float]) -> list[float]:
    total = sum(probabilities)
    return [p / total for p in probabilities]
