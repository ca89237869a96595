"""A database that accepts connections and never answers fails a connect instead of hanging it."""

import socket

import pytest
from sqlalchemy.exc import OperationalError

from tacit.core import db


def test_connect_to_a_silent_server_fails_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_S", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        engine = db.make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/tacit")
        with pytest.raises(OperationalError):
            engine.connect()


@pytest.mark.parametrize("url", [
    "postgresql://app:secret@db.example:5432/tacit?sslmode=verify-full&sslrootcert=/etc/ca.pem",
    "postgres://app:secret@db.example:5432/tacit?sslmode=verify-full&sslrootcert=/etc/ca.pem",
])
def test_plain_postgres_urls_use_psycopg_3_and_keep_their_ssl_settings(url: str) -> None:
    """A CloudNativePG or Heroku-style ``uri`` secret names no driver; SQLAlchemy would pick psycopg2."""
    engine = db.make_engine(url)

    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.url.query == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem"}
    assert (engine.url.username, engine.url.password, engine.url.host) == ("app", "secret", "db.example")
