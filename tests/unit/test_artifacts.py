"""The download cache of remote model versions, on fsspec's in-memory filesystem (a remote URL to it)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest

from tacit.core.artifacts import COMPLETE, local_copy, publish
from tacit.core.settings import TacitSettings


@pytest.fixture
def published(tmp_path: Path) -> tuple[str, TacitSettings]:
    """The URI of a small version published to a fresh in-memory store, and settings with an empty data dir."""
    version = tmp_path / "run-1"
    (version / "sub").mkdir(parents=True)
    (version / "config.json").write_text("{}")
    (version / "sub" / "weights.bin").write_bytes(b"w" * 1000)
    root = f"memory://{uuid.uuid4().hex}/versions"
    uri = publish(version, version.name, TacitSettings(data_dir=tmp_path / "trainer", artifact_uri=root))
    return uri, TacitSettings(data_dir=tmp_path / "reader")


def test_a_remote_version_is_downloaded_once(published: tuple[str, TacitSettings]) -> None:
    uri, settings = published

    local = local_copy(uri, settings)
    fsspec.filesystem("memory").rm(uri.removeprefix("memory://"), recursive=True)

    assert local_copy(uri, settings) == local  # from the cache: the store is not read again
    assert (local / "sub" / "weights.bin").read_bytes() == b"w" * 1000 and (local / COMPLETE).exists()
    assert [path.name for path in local.parent.iterdir()] == [local.name]  # no partial copy left


def test_processes_of_one_node_downloading_at_once_share_one_copy(published: tuple[str, TacitSettings]) -> None:
    uri, settings = published

    with ThreadPoolExecutor(8) as pool:
        copies = set(pool.map(lambda _: local_copy(uri, settings), range(8)))

    (local,) = copies
    assert (local / "config.json").read_text() == "{}" and (local / COMPLETE).exists()
    assert [path.name for path in local.parent.iterdir()] == [local.name]


def test_a_local_version_is_used_in_place(tmp_path: Path) -> None:
    assert local_copy(str(tmp_path), TacitSettings(data_dir=tmp_path / "data")) == tmp_path
    assert not (tmp_path / "data").exists()
