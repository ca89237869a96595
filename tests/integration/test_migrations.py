"""The Alembic migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from tacit.core import db

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database(embedded_stack) -> str:
    url = make_url(embedded_stack.database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS tacit_migrations")
        conn.execute("CREATE DATABASE tacit_migrations")
    return url.set(database="tacit_migrations").render_as_string(hide_password=False)


def test_migrations_match_the_models_and_round_trip(empty_database: str):
    db.upgrade(empty_database)
    engine = db.make_engine(empty_database)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), db.Base.metadata) == []

    command.downgrade(db.alembic_config(empty_database), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    db.upgrade(empty_database)
    assert {"messages", "feedback", "rejected_events", "model_versions"} <= set(inspect(engine).get_table_names())
    engine.dispose()
