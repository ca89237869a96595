"""Hot swap: follow promotions in the registry and swap each new champion in without dropping a request.

The trainer promotes by making one version ``champion`` of its scope (the global model, or one tenant's) and
sending ``NOTIFY tacit_model_events``. Every scope's champion is followed, each into a slot of its own: a
request is scored by its tenant's champion where the tenant has one, else by the global champion. The
service LISTENs on that channel, and also reads the registry every ``serve_poll_s`` seconds, because a
notification sent while the listening connection was down is lost for good. Either way the registry row is
the truth and the notification only a hint to look now.

A new champion is loaded on a thread of its own while the current one keeps serving, warmed up and checked
on a canary set (finite, within the 1..K scale, and equal to the canary rewards the version recorded, when
it recorded any, within the ``CANARY_TOLERANCE`` of the way it is served), then becomes the model of every
new request in one assignment. Requests encoded for the old model finish on it (see :mod:`tacit.serving.batcher`). A version that fails to load or fails the canary is
reported (log, ``/v1/model``, ``/metrics``) and never tried again; the champion keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg

from tacit.core.artifacts import local_copy
from tacit.core.db import MODEL_EVENTS_CHANNEL, ModelVersion, make_engine
from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.registry import champions
from tacit.core.settings import TacitSettings
from tacit.model.schema import Rejection
from tacit.model.scoring import canary_rewards
from tacit.serving.metrics import ServiceMetrics
from tacit.serving.model import ServedModel, load_scorer

logger = logging.getLogger(__name__)

# How far served canary rewards may be from those the trainer recorded, by the way the model is served.
# Unquantised, they differ by precision (bf16 against float32) and nothing else. int8 moves them more
# (``bench/quantize.py``: on a `make demo` MiniLM up to 0.12 on the canary, 0.29 on held-out texts); a wrong
# or broken model is off by far more.
CANARY_TOLERANCE = {None: 0.1, "int8": 0.3}


class CanaryError(TacitError):
    """A loaded model whose canary rewards show it is broken, or not the model that was evaluated."""


def check_canary(model: ServedModel) -> None:
    rewards = canary_rewards(model.scorer)  # also the warm-up: the first calls of a fresh model are the slow ones
    top = len(model.scorer.spec.levels)
    if not all(math.isfinite(reward) and 1.0 <= reward <= top for reward in rewards):
        raise CanaryError(f"canary rewards {rewards} are not all finite numbers within 1..{top}")
    recorded = model.metrics.get("canary_rewards")
    tolerance = CANARY_TOLERANCE[model.scorer.quantize]
    if recorded is not None and any(abs(a - b) > tolerance for a, b in zip(rewards, recorded)):
        raise CanaryError(
            f"canary rewards {rewards} differ from the recorded {recorded} by more than {tolerance}"
        )


def load_checked(settings: TacitSettings, row: ModelVersion) -> ServedModel:
    model = ServedModel(load_scorer(local_copy(row.artifact_uri, settings), settings), row.id,
                        dict(row.metrics or {}), row.tenant)
    check_canary(model)
    return model


@dataclass
class ModelSlot:
    """The model that new requests of one scope get: replaced whole, by one assignment on the event loop.
    Empty for a tenant whose first champion was rejected (its requests get the global model)."""

    current: ServedModel | None
    last_rejected: Rejection | None = None


@dataclass
class ModelSlots:
    """The global champion's slot and one per tenant with a champion of its own: each such tenant costs the
    memory of one more model."""

    default: ModelSlot
    tenants: dict[str, ModelSlot] = field(default_factory=dict)
    followed: bool = False  # the registry was read once: the tenants' own champions are loaded

    def slot(self, tenant: str | None) -> ModelSlot:
        """What ``tenant``'s requests get: its own slot while that holds a model, else the global one."""
        own = self.tenants.get(tenant) if tenant is not None else None
        return own if own is not None and own.current is not None else self.default

    def last_rejected(self, tenant: str | None) -> Rejection | None:
        """The last version of ``tenant``'s own scope that was refused, where it has one, else the global's."""
        own = self.tenants.get(tenant) if tenant is not None else None
        return (own or self.default).last_rejected

    def of(self, row: ModelVersion) -> ModelSlot:
        """The slot ``row``'s scope is served from, made empty for a tenant's first champion."""
        return self.default if row.tenant is None else self.tenants.setdefault(row.tenant, ModelSlot(None))


class ChampionFollower:
    def __init__(self, settings: TacitSettings, slots: ModelSlots, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.slots = slots
        self._metrics = metrics
        self._engine = make_engine(endpoint(settings, "postgres"))
        self._rejected: set[int] = set()
        url = self._engine.url
        self._listen_url = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url.get_backend_name() == "postgresql" and not settings.pgbouncer_transaction_mode
            else None  # no LISTEN through a transaction-mode pooler: reading every serve_poll_s seconds
        )

    async def run(self) -> None:
        """Until cancelled: LISTEN where the registry is PostgreSQL, else (or while that fails) poll."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tacit-loader") as loader:
            try:
                await self._follow_forever(loader)
            finally:
                self._engine.dispose()

    async def _follow_forever(self, loader: ThreadPoolExecutor) -> None:
        while True:
            try:
                await self._listen(loader)
            except (psycopg.Error, OSError) as error:
                logger.warning("Not listening for promotions (%s); reading the registry every %.1f s.",
                               error, self.settings.serve_poll_s)
            await asyncio.sleep(self.settings.serve_poll_s)
            await self.follow(loader)

    async def _listen(self, loader: ThreadPoolExecutor) -> None:
        if self._listen_url is None:
            return
        async with await psycopg.AsyncConnection.connect(self._listen_url, autocommit=True) as connection:
            await connection.execute(f"LISTEN {MODEL_EVENTS_CHANNEL}")
            while True:
                await self.follow(loader)  # first: what was promoted before we listened
                async for _ in connection.notifies(timeout=self.settings.serve_poll_s, stop_after=1):
                    pass

    async def follow(self, loader: ThreadPoolExecutor) -> None:
        """Swap in every scope's champion that is new, in one read of the registry; a registry that cannot
        be read changes nothing."""
        try:
            rows = await asyncio.to_thread(champions, self._engine)
        except Exception as error:  # noqa: BLE001 - serving goes on; the next look may succeed
            logger.warning("Cannot read the model registry: %s", error)
            return
        self._forget_tenants_without_champion({row.tenant for row in rows})
        for row in rows:
            await self._swap(loader, row)
        self.slots.followed = True

    def _forget_tenants_without_champion(self, scopes: set[str | None]) -> None:
        """A tenant whose champion lost that status with no successor (changed by hand in the registry) is
        served the global model again, and its own is freed."""
        for tenant in set(self.slots.tenants) - scopes:
            del self.slots.tenants[tenant]
            logger.info("Tenant %s has no champion of its own any more; it is served the global model.", tenant)

    async def _swap(self, loader: ThreadPoolExecutor, row: ModelVersion) -> None:
        slot = self.slots.of(row)
        if (slot.current is not None and row.id == slot.current.version) or row.id in self._rejected:
            return
        try:
            model = await asyncio.get_running_loop().run_in_executor(loader, load_checked, self.settings, row)
        except Exception as error:  # noqa: BLE001 - whatever breaks in a checkpoint, the champion stays
            self._reject(slot, row.id, f"{type(error).__name__}: {error}")
            return
        slot.current = model
        self._metrics.swaps.labels("swapped").inc()
        if row.tenant is None:
            self._metrics.model_version.set(row.id)
        logger.info("Now serving model version %d (%s) from %s", row.id, scope_name(row.tenant), row.artifact_uri)

    def _reject(self, slot: ModelSlot, version: int, reason: str) -> None:
        self._rejected.add(version)
        slot.last_rejected = Rejection(version=version, reason=reason[:1000])
        self._metrics.swaps.labels("rejected").inc()
        serving = slot.current.version if slot.current is not None else "the global model"
        logger.error("Model version %d was promoted but is not served: %s. Still serving %s.",
                     version, reason, serving)


def scope_name(tenant: str | None) -> str:
    return "global" if tenant is None else f"tenant {tenant}"
