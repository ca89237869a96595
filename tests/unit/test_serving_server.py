"""Which checkpoint ``tacit serve`` picks, against a registry in SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tacit.core.db import Base, ModelStatus, ModelVersion, make_engine
from tacit.core.settings import TacitSettings
from tacit.serving.loading import ModelNotFoundError, ServingTarget, resolve_target


@pytest.fixture
def settings(tmp_path: Path) -> TacitSettings:
    settings = TacitSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'registry.db'}")
    engine = make_engine(settings.database_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return settings


def register(settings: TacitSettings, version: int, status: ModelStatus, checkpoint: Path | None) -> Path:
    """A registry row; ``checkpoint`` None points it at a directory that does not exist."""
    artifact = checkpoint or settings.data_dir / f"gone-{version}"
    if checkpoint is not None:
        checkpoint.mkdir()
        (checkpoint / "config.json").write_text("{}")
    engine = make_engine(settings.database_url)
    with Session(engine) as session, session.begin():
        row = ModelVersion(id=version, base_model="tiny", artifact_uri=str(artifact), status=status.value)
        session.add(row)
    engine.dispose()
    return artifact


def test_serves_the_champion(settings: TacitSettings, tmp_path: Path) -> None:
    register(settings, 1, ModelStatus.RETIRED, tmp_path / "v1")
    champion = register(settings, 2, ModelStatus.CHAMPION, tmp_path / "v2")
    register(settings, 3, ModelStatus.CANDIDATE, tmp_path / "v3")

    assert resolve_target(settings) == ServingTarget(champion, 2)


def test_serves_the_version_asked_for(settings: TacitSettings, tmp_path: Path) -> None:
    register(settings, 2, ModelStatus.CHAMPION, tmp_path / "v2")
    candidate = register(settings, 3, ModelStatus.CANDIDATE, tmp_path / "v3")

    assert resolve_target(settings, version=3) == ServingTarget(candidate, 3)


def test_explicit_checkpoint_needs_no_registry(tmp_path: Path) -> None:
    settings = TacitSettings(data_dir=tmp_path)  # no database at all

    assert resolve_target(settings, checkpoint=tmp_path) == ServingTarget(tmp_path, None)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (None, "No champion model yet: run `tacit train`"),
        (9, "no model version 9"),
        (4, "version 4 points at"),
    ],
)
def test_says_when_there_is_nothing_to_serve(
    settings: TacitSettings, version: int | None, message: str
) -> None:
    register(settings, 4, ModelStatus.CANDIDATE, checkpoint=None)

    with pytest.raises(ModelNotFoundError, match=message):
        resolve_target(settings, version=version)


def test_refuses_both_a_checkpoint_and_a_version(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        resolve_target(TacitSettings(data_dir=tmp_path), version=1, checkpoint=tmp_path)


def test_waiting_for_the_first_champion_polls_and_reports_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from tacit.serving import loading

    answers = iter([loading.NoChampionYet("none"), loading.NoChampionYet("none"), None])

    def resolve(settings):
        answer = next(answers)
        if answer is not None:
            raise answer

    monkeypatch.setattr(loading, "resolve_target", resolve)
    reports, sleeps = [], []
    loading.wait_for_champion(TacitSettings(), poll_s=2, report=reports.append, sleep=sleeps.append)

    assert sleeps == [2, 2] and len(reports) == 1


def test_an_unknown_version_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from tacit.serving import loading

    def resolve(settings):
        raise loading.ModelNotFoundError("There is no model version 9 in the registry.")

    monkeypatch.setattr(loading, "resolve_target", resolve)
    with pytest.raises(loading.ModelNotFoundError, match="version 9"):
        loading.wait_for_champion(TacitSettings(), sleep=lambda s: pytest.fail("waited"))
