"""Alembic environment and versions: the only way Tacit's schema changes (`tacit db upgrade`)."""
