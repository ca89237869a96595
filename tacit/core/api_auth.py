"""The FastAPI dependency that turns a request's API key into its tenant, shared by the gateway and the
scoring service.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; both are declared as security
schemes, so ``/docs`` offers to send one. A missing or unknown key is a 401; a revoked one a 403, because
the caller did prove who they were, and the answer should tell them to ask for a new key rather than to
check the one they have. A key over its request rate gets a 429 with ``Retry-After``: one tenant's runaway
job must not starve the others. A key that cannot be checked because the database is down is a 503 with
``Retry-After``: the fault is the service's and temporary.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import DBAPIError

from tacit.core.apikeys import KeyStoreUnavailable, KeyVerifier

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer tk_...")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: tk_...")
CHALLENGE = {"WWW-Authenticate": "Bearer"}
KEY_STORE_RETRY_S = 5


class KeyRateLimiter:
    """A token bucket per key id: ``rate`` requests per second on average, ``burst`` at once.

    Thread-safe (``authenticate`` runs on FastAPI's thread pool); refusals are counted in ``registry``.
    """

    def __init__(self, rate: float, burst: int, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when counted)
        self._lock = threading.Lock()
        self.refused = Counter("tacit_rate_limited_requests", "Requests refused with 429, over a key's rate.",
                               registry=registry)

    def wait(self, key_id: str) -> float:
        """0 if the key may make a request now (and it is counted), else the seconds until it may."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
        self.refused.inc()
        return (1 - tokens) / self.rate


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str:
    """The tenant of the request's full key (the gateway, the scoring service): a read-only key is a 403.

    A plain function: FastAPI runs it on its thread pool, so a cache miss's query never blocks the loop.
    """
    return tenant_of_key(request, credentials.credentials if credentials else header_key, read_only_allowed=False)


def authenticate_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str:
    """The tenant of any valid key, a read-only dashboard token included: for pages that only read."""
    return tenant_of_key(request, credentials.credentials if credentials else header_key, read_only_allowed=True)


def tenant_of_key(request: Request, presented: str | None, read_only_allowed: bool) -> str:
    """The tenant of ``presented``, checked with the app's ``state.api_keys`` (a :class:`KeyVerifier`)."""
    keys: KeyVerifier = request.app.state.api_keys
    if presented is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
            "`tacit keys create --tenant T` makes one.",
            headers=CHALLENGE,
        )
    try:
        stored = keys.lookup(presented)
    except (DBAPIError, KeyStoreUnavailable) as exc:  # the key store down, restarting or frozen: retry later
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "API keys cannot be checked now: the database is unavailable. Retry shortly.",
                            headers={"Retry-After": str(KEY_STORE_RETRY_S)}) from exc
    if stored is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "The API key is not valid.", headers=CHALLENGE)
    if stored.revoked_at is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"API key {stored.id} was revoked at {stored.revoked_at:%Y-%m-%d %H:%M:%S %Z}; ask for a new one.",
        )
    if stored.read_only and not read_only_allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"API key {stored.id} is a read-only dashboard token; sending events and scoring "
                            "need a key made without --read-only.")
    limiter: KeyRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and (wait := limiter.wait(stored.id)):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"API key {stored.id} is over its {limiter.rate:g} requests/s; retry in {wait:.2f}s.",
                            headers={"Retry-After": str(math.ceil(wait))})
    return stored.tenant


def rate_limiter(rate: float | None, burst: int, registry: CollectorRegistry) -> KeyRateLimiter | None:
    """The app's limiter, or None when the settings set no rate."""
    return KeyRateLimiter(rate, burst, registry) if rate is not None else None


KeyTenant = Annotated[str, Depends(authenticate)]
