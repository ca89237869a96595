"""What a tenant's training run reads and must beat: its own labels, and its champion else the global one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tacit.core.db import Base, ModelStatus, ModelVersion, make_engine
from tacit.core.errors import TacitError
from tacit.core.examples import Selection
from tacit.trainer.job import incumbent, scoped


def test_a_tenant_model_reads_only_that_tenants_labels() -> None:
    assert scoped(Selection(levels=(1, 5)), "acme") == Selection(tenants=("acme",), levels=(1, 5))
    assert scoped(Selection(tenants=("acme", "globex")), None).tenants == ("acme", "globex")
    with pytest.raises(TacitError, match="leave the other tenants"):
        scoped(Selection(tenants=("globex",)), "acme")


def test_the_incumbent_is_the_tenants_champion_else_the_global_one(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(ModelVersion(id=version, tenant=tenant, base_model="tiny", artifact_uri="a",
                                     status=ModelStatus.CHAMPION.value, metrics={})
                        for version, tenant in ((1, None), (2, "acme")))

    assert [incumbent(engine, tenant).id for tenant in (None, "acme", "globex")] == [1, 2, 1]
    engine.dispose()
