"""API keys: their format, their hashing, and the store's rules, on SQLite (the same code runs on Postgres in
tests/integration/test_gateway.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.engine import Engine

from tacit.core import apikeys
from tacit.core.db import ApiKey
from tacit.core.errors import TacitError


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")  # a file: lookups run on their own threads
    ApiKey.__table__.create(engine)
    yield engine
    engine.dispose()


def forged(key: str) -> str:
    """The same id with a wrong secret."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_a_new_key_carries_its_id_and_256_random_bits():
    key = apikeys.new_key()
    prefix, identifier, secret = key.split("_", 2)
    assert (prefix, apikeys.key_id(key)) == ("tk", identifier)
    assert len(secret) == 43  # 32 bytes, base64url
    assert apikeys.new_key() != key


@pytest.mark.parametrize("presented", [
    "", "tk_", "Bearer tk_0123456789ab_" + "a" * 43, "tk_0123456789ab_" + "a" * 42, "tk_0123456789ab_" + "a" * 44,
    "tk_0123456789AB_" + "a" * 43, "xk_0123456789ab_" + "a" * 43, " tk_0123456789ab_" + "a" * 43,
    "tk_0123456789ab_" + "a" * 42 + "=",
])
def test_malformed_keys_have_no_id(presented: str):
    assert apikeys.key_id(presented) is None


def test_only_the_sha256_of_the_key_is_stored(engine: Engine):
    stored, key = apikeys.create(engine, "acme", "chat app")
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() == stored.key_hash
    assert key not in repr(stored) and stored.key_hash not in repr(stored)
    assert (row.id, row.tenant, row.name) == (apikeys.key_id(key), "acme", "chat app")


def test_verify_answers_the_tenant_of_a_valid_key_only(engine: Engine):
    _, key = apikeys.create(engine, "acme")
    assert apikeys.verify(engine, key) == "acme"
    assert apikeys.verify(engine, forged(key)) is None
    assert apikeys.verify(engine, apikeys.new_key()) is None
    assert apikeys.verify(engine, "not a key") is None


def test_revoked_keys_are_found_but_not_valid(engine: Engine):
    stored, key = apikeys.create(engine, "acme")
    revoked = apikeys.revoke(engine, stored.id)
    assert revoked.revoked_at is not None
    assert apikeys.verify(engine, key) is None
    assert apikeys.lookup(engine, key).revoked_at == revoked.revoked_at
    assert apikeys.revoke(engine, key).revoked_at == revoked.revoked_at  # by the whole key; first time kept


def test_listing_filters_by_tenant(engine: Engine):
    for tenant in ("acme", "acme", "globex"):
        apikeys.create(engine, tenant)
    assert [key.tenant for key in apikeys.list_keys(engine)] == ["acme", "acme", "globex"]
    assert [key.tenant for key in apikeys.list_keys(engine, "globex")] == ["globex"]


def test_user_errors_say_what_to_do(engine: Engine):
    with pytest.raises(apikeys.KeyNotFoundError, match="tacit keys list"):
        apikeys.revoke(engine, "0123456789ab")
    with pytest.raises(TacitError, match="Invalid tenant 'a:b'"):
        apikeys.create(engine, "a:b")


def test_the_verifier_trusts_a_stored_key_for_its_ttl(engine: Engine):
    _, key = apikeys.create(engine, "acme")
    cached, uncached = apikeys.KeyVerifier(engine, ttl_s=3600), apikeys.KeyVerifier(engine, ttl_s=0)
    assert cached.lookup(key).tenant == uncached.lookup(key).tenant == "acme"
    with engine.begin() as conn:  # as `tacit keys revoke` in another process would
        conn.execute(update(ApiKey).values(revoked_at=func.now()))
    assert cached.lookup(key).revoked_at is None
    assert uncached.lookup(key).revoked_at is not None
    assert cached.lookup(forged(key)) is None  # a cached id still checks the secret
