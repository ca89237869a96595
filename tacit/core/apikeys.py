"""Per-tenant API keys: create, list, revoke, and verify the key a request presents.

A key reads ``tk_<id>_<secret>``. The id is public (it names the key in listings, revocations and logs); the
secret is 256 random bits. Only the SHA-256 of the whole key is stored. Slow password hashes (scrypt,
argon2) exist for secrets people choose, which can be guessed; a 256-bit random secret cannot be guessed
however fast the hash is, and SHA-256 keeps the check on every request at a few microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from cachetools import TTLCache, cached
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from tacit.core.db import ApiKey
from tacit.core.domain import Tenant, describe_validation_error
from tacit.core.errors import TacitError

LOOKUP_TIMEOUT_S = 5.0  # a database that does not answer (frozen, partitioned) must not hold requests
LOOKUPS_AT_ONCE = 8  # lookups stuck on such a database, at most
KEY_PATTERN = re.compile(r"tk_(?P<id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}")
CACHED_KEYS = 10_000
COLUMNS = tuple(ApiKey.__table__.columns)
TENANT = TypeAdapter(Tenant)


class KeyStoreUnavailable(TacitError):
    """The database did not answer a key lookup in time; the request should be retried later."""


class KeyNotFoundError(TacitError, LookupError):
    """No key has the id a command was given."""


@dataclass(frozen=True)
class StoredKey:
    id: str
    tenant: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    key_hash: str = field(repr=False)
    read_only: bool = False


def new_key() -> str:
    """A fresh key; its id is :func:`key_id` of it."""
    return f"tk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def key_id(presented: str) -> str | None:
    """The id part of a well-formed key, else None (nothing is looked up for a malformed key)."""
    match = KEY_PATTERN.fullmatch(presented)
    return match["id"] if match else None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(engine: Engine, tenant: str, name: str | None = None, read_only: bool = False) -> tuple[StoredKey, str]:
    """Store a new key of ``tenant``; returns it with the plain key, which is never seen again.

    A ``read_only`` key (a dashboard token) signs in to the dashboard only: the gateway and the scoring
    service refuse it, so a token handed to people who only look cannot write events or spend compute.
    """
    try:
        TENANT.validate_python(tenant)
    except ValidationError as error:
        raise TacitError(f"Invalid tenant {tenant!r}: {describe_validation_error(error)}") from None
    key = new_key()
    insert = ApiKey.__table__.insert().values(id=key_id(key), tenant=tenant, name=name, key_hash=digest(key),
                                              read_only=read_only)
    with engine.begin() as conn:
        row = conn.execute(insert.returning(*COLUMNS)).one()
    return StoredKey(**row._mapping), key


def list_keys(engine: Engine, tenant: str | None = None) -> list[StoredKey]:
    query = select(*COLUMNS).order_by(ApiKey.tenant, ApiKey.created_at)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    with engine.connect() as conn:
        return [StoredKey(**row._mapping) for row in conn.execute(query)]


def revoke(engine: Engine, key: str) -> StoredKey:
    """Revoke by id (or the whole key); revoking twice keeps the first time."""
    identifier = key_id(key) or key
    revoked = update(ApiKey).where(ApiKey.id == identifier).values(
        revoked_at=func.coalesce(ApiKey.revoked_at, func.now())
    )
    with engine.begin() as conn:
        row = conn.execute(revoked.returning(*COLUMNS)).one_or_none()
    if row is None:
        raise KeyNotFoundError(f"There is no API key {identifier!r}; `tacit keys list` shows them.")
    return StoredKey(**row._mapping)


def lookup(engine: Engine, presented: str) -> StoredKey | None:
    """The stored key that ``presented`` is, revoked or not; None for anything else."""
    return _lookup(partial(_fetch, engine), presented)


def verify(engine: Engine, presented: str) -> str | None:
    """The tenant of a valid, unrevoked key, else None."""
    stored = lookup(engine, presented)
    return stored.tenant if stored is not None and stored.revoked_at is None else None


class KeyVerifier:
    """:func:`lookup` for services, with what is stored under each id cached for ``ttl_s`` seconds per process.

    Every request still hashes and compares its key; the cache only saves the database round trip. So a key
    revoked by another process (``tacit keys revoke``) is refused within ``ttl_s`` seconds, not at once.
    Unknown ids are cached too, so a client retrying a wrong key does not query the database each time.
    A lookup the database does not answer within ``LOOKUP_TIMEOUT_S`` raises :class:`KeyStoreUnavailable`.
    """

    def __init__(self, engine: Engine, ttl_s: float) -> None:
        cache = TTLCache(maxsize=CACHED_KEYS, ttl=ttl_s)
        self._fetch = cached(cache, lock=threading.Lock())(partial(_within_timeout, partial(_fetch, engine)))

    def lookup(self, presented: str) -> StoredKey | None:
        return _lookup(self._fetch, presented)


_STUCK = threading.BoundedSemaphore(LOOKUPS_AT_ONCE)


def _within_timeout(fetch: Callable[[str], StoredKey | None], identifier: str) -> StoredKey | None:
    """``fetch`` on a daemon thread, waited for at most ``LOOKUP_TIMEOUT_S``.

    A query to a frozen server blocks in the socket with no timeout of its own; a daemon thread left behind
    neither holds the request nor keeps the process from exiting, and the semaphore bounds how many can pile
    up while the server stays frozen.
    """
    if not _STUCK.acquire(timeout=LOOKUP_TIMEOUT_S):
        raise KeyStoreUnavailable("API keys cannot be checked: the database does not answer.")
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["key"] = fetch(identifier)
        except Exception as error:  # noqa: BLE001 - handed to the waiting request as it is
            outcome["error"] = error
        finally:
            _STUCK.release()
            done.set()

    threading.Thread(target=run, name="tacit-key-lookup", daemon=True).start()
    if not done.wait(LOOKUP_TIMEOUT_S):
        raise KeyStoreUnavailable(f"API keys cannot be checked: the database did not answer in {LOOKUP_TIMEOUT_S:g}s.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["key"]


def _lookup(fetch: Callable[[str], StoredKey | None], presented: str) -> StoredKey | None:
    identifier = key_id(presented)
    stored = fetch(identifier) if identifier is not None else None
    # Compared in constant time, so response timing tells nothing about how much of a guess was right.
    if stored is None or not hmac.compare_digest(digest(presented), stored.key_hash):
        return None
    return stored


def _fetch(engine: Engine, identifier: str) -> StoredKey | None:
    with engine.connect() as conn:
        row = conn.execute(select(*COLUMNS).where(ApiKey.id == identifier)).one_or_none()
    return None if row is None else StoredKey(**row._mapping)
