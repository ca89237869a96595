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

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse

from tacit.core.api_auth import authenticate
from tacit.core.apikeys import KeyVerifier
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
from tacit.serving.swap import ChampionFollower, ModelSlot

TRUNCATED_HEADER = "X-Tacit-Truncated"  # /get_reward's body is fixed by its clients; this says which were cut


def batch_limits(settings: TacitSettings) -> BatchLimits:
    return BatchLimits(
        max_texts=settings.serve_batch_size,
        max_tokens=settings.serve_batch_tokens,
        max_wait_s=settings.serve_max_wait_ms / 1000,
    )


def create_app(
    model: ServedModel,
    settings: TacitSettings,
    follower: Callable[[ModelSlot, ServiceMetrics], ChampionFollower] | None = None,
    keys: KeyVerifier | None = None,
) -> FastAPI:
    """Serves ``model``; with a ``follower`` factory, also each champion promoted later (hot swap). With
    ``keys``, scoring needs a valid API key; health, readiness and metrics never do (probes carry none)."""
    keyed = [Depends(authenticate)] if keys is not None else []
    slot = ModelSlot(model)
    metrics = ServiceMetrics()
    metrics.model_version.set(-1 if model.version is None else model.version)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread each: the model is not thread-safe, and a fast tokenizer switches truncation on and off
        # in shared state, so concurrent encodes could cut a text that was meant to be measured whole.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-scorer") as executor,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-tokenizer") as app.state.tokenizer,
        ):
            app.state.batcher = MicroBatcher(batch_limits(settings), executor, metrics.observe_batch)
            tasks = [asyncio.create_task(app.state.batcher.run(), name="tacit-batcher")]
            if follower is not None:
                tasks.append(asyncio.create_task(follower(slot, metrics).run(), name="tacit-follower"))
            app.state.tasks = tasks
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="Tacit scoring service", lifespan=lifespan)
    app.state.api_keys = keys

    async def in_tokenizer_thread(encode: Callable[[Sequence], list[Encoded]], inputs: Sequence) -> list[Encoded]:
        return await asyncio.get_running_loop().run_in_executor(app.state.tokenizer, encode, inputs)

    async def score_encoded(served: ServedModel, encoded: Sequence[Encoded]) -> tuple[Scores, list[Truncation]]:
        truncated = [item.truncation for item in encoded if item.truncation is not None]
        metrics.truncated_texts.inc(len(truncated))
        scores = await app.state.batcher.score(served, [item.features for item in encoded])
        return scores, truncated

    async def score_items(items: Sequence) -> tuple[ServedModel, Scores, list[Truncation]]:
        served = slot.current  # one model for the whole request, even if a swap happens meanwhile
        try:
            encoded = await in_tokenizer_thread(served.encode, items)
        except ResponseTooLongError as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        return served, *await score_encoded(served, encoded)

    @app.post("/v1/score", dependencies=keyed)
    async def score(request: ScoreRequest) -> ScoreResponse:
        with metrics.request_seconds.labels("/v1/score").time():
            served, scores, truncated = await score_items(request.items)
            return ScoreResponse(
                rewards=scores.rewards,
                level_probabilities=scores.level_probabilities,
                levels=list(served.scorer.spec.levels),
                model_version=served.version,
                truncated=truncated,
            )

    @app.post("/v1/compare", dependencies=keyed)
    async def compare(request: CompareRequest) -> CompareResponse:
        with metrics.request_seconds.labels("/v1/compare").time():
            items = [item for pair in request.pairs for item in (pair.a, pair.b)]
            served, scores, truncated = await score_items(items)
            rows = scores.level_probabilities
            comparisons = [
                comparison(scores.rewards[i], scores.rewards[i + 1], rows[i], rows[i + 1])
                for i in range(0, len(items), 2)
            ]
            return CompareResponse(comparisons=comparisons, model_version=served.version, truncated=truncated)

    @app.post("/get_reward", dependencies=keyed)
    async def get_reward(request: RewardRequest) -> JSONResponse:
        with metrics.request_seconds.labels("/get_reward").time():
            served = slot.current
            encoded = await in_tokenizer_thread(served.encode_texts, request.query)
            scores, truncated = await score_encoded(served, encoded)
            headers = {TRUNCATED_HEADER: ",".join(str(t.index) for t in truncated)} if truncated else None
            return JSONResponse(RewardResponse(rewards=scores.rewards).model_dump(), headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers; says nothing about the model (see /readyz)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready while every background task (batcher, follower) runs: a load balancer stops sending
        requests to a replica whose batcher died, instead of letting them hang."""
        stopped = [task.get_name() for task in app.state.tasks if task.done()]
        if stopped:
            return JSONResponse({"status": "not ready", "stopped": stopped}, status_code=503)
        return JSONResponse({"status": "ready", "model_version": slot.current.version})

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queued_texts.set(app.state.batcher.queued_texts)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/model")
    async def model_info() -> ModelInfo:
        served = slot.current
        return ModelInfo(
            model_version=served.version,
            following_champion=follower is not None,
            last_rejected=slot.last_rejected,
            checkpoint=str(served.scorer.checkpoint),
            layout=served.scorer.spec.layout,
            levels=list(served.scorer.spec.levels),
            max_length=served.max_length,
            device=str(served.scorer.device),
        )

    return app


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
