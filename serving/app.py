"""The scoring API: Tacit's own ``/v1/score`` and WildReward's ``/get_reward``.

WildReward calls its model inside the async handler, which stalls every other request, health checks
included, for the length of a batch. Here the model runs in one dedicated thread: the event loop stays
free, and the model, which is not thread-safe, still sees one call at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import FastAPI

from serving.schema import ModelInfo, RewardRequest, RewardResponse, ScoreRequest, ScoreResponse
from tacit.scoring import RewardScorer

T = TypeVar("T")


def create_app(scorer: RewardScorer, model_version: int | None) -> FastAPI:
    """``model_version`` is the registry id echoed in every answer; None when serving a bare checkpoint."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-scorer") as executor:
            app.state.executor = executor
            yield

    app = FastAPI(title="Tacit scoring service", lifespan=lifespan)

    async def in_model_thread(function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(app.state.executor, function, *args)

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> ScoreResponse:
        texts = [item.render(scorer.spec.layout) for item in request.items]
        scores = await in_model_thread(scorer.score_texts, texts)
        return ScoreResponse(
            rewards=scores.rewards,
            level_probabilities=scores.level_probabilities,
            levels=list(scorer.spec.levels),
            model_version=model_version,
        )

    @app.post("/get_reward")
    async def get_reward(request: RewardRequest) -> RewardResponse:
        scores = await in_model_thread(scorer.score_texts, request.query)
        return RewardResponse(rewards=scores.rewards)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model() -> ModelInfo:
        return ModelInfo(
            model_version=model_version,
            checkpoint=str(scorer.checkpoint),
            layout=scorer.spec.layout,
            levels=list(scorer.spec.levels),
            max_length=scorer.max_length,
            device=str(scorer.device),
        )

    return app
