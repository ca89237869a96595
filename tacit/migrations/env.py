"""Alembic environment: runs migrations online against the URL that ``tacit.core.db.upgrade`` passes in."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from tacit.core.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Tacit runs migrations online only: `tacit db upgrade`.")
run_migrations_online()
