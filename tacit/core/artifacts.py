"""Model versions at a URI: a local directory, or object storage that every node reads.

Training writes a checkpoint to a local directory, as transformers does; :func:`publish` copies it to
``TACIT_ARTIFACT_URI`` (``s3://``, ``gs://``, any fsspec URL) before the version is registered, so a version
in the registry is always complete. Readers call :func:`local_copy`: a local path is used as it is, a remote
one is downloaded once into the data directory's cache (keyed by the URI, which never changes for a
version) and reused; several processes of one node may do so at once (the Ray Train workers of an
incremental run). fsspec does the transfers; credentials come from each store's usual environment.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from tacit.core.extras import require
from tacit.core.settings import TacitSettings

COMPLETE = ".tacit-complete"  # written last into a cached copy: a half-finished download is never used


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def storage_options(settings: TacitSettings, uri: str) -> dict[str, Any]:
    if not uri.startswith("s3://"):
        return {}
    require("s3", "s3fs")
    return {"client_kwargs": {"endpoint_url": settings.artifact_endpoint_url}} if settings.artifact_endpoint_url else {}


def remote_root(settings: TacitSettings) -> str | None:
    """``TACIT_ARTIFACT_URI`` when versions are kept in a store every node reads; None when they stay in the
    local models directory."""
    root = settings.artifact_uri
    return root.rstrip("/") if root is not None and is_remote(root) else None


def filesystem(uri: str, settings: TacitSettings) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of ``uri`` with the store's settings, and the path in it."""
    return url_to_fs(uri, **storage_options(settings, uri))


def publish(local_dir: Path, name: str, settings: TacitSettings) -> str:
    """The URI of ``local_dir`` once it is at the artifact location under ``name`` (a run's directory name):
    copied there when that location is remote, else the local path itself."""
    root = remote_root(settings)
    if root is None:
        return str(local_dir)
    uri = f"{root}/{name}"
    fs, path = filesystem(uri, settings)
    fs.put(f"{local_dir}/", path, recursive=True)
    return uri


def read_text(uri: str, name: str, settings: TacitSettings) -> str:
    """One small file of a version (its config), without downloading the weights."""
    with fsspec.open(f"{uri}/{name}", "r", encoding="utf-8", **storage_options(settings, uri)) as source:
        return source.read()


def write_text(uri: str, name: str, text: str, settings: TacitSettings) -> str:
    """Add one small file (the model card) to a version, local or remote; returns its URI."""
    target = f"{uri}/{name}"
    with fsspec.open(target, "w", encoding="utf-8", **storage_options(settings, uri)) as out:
        out.write(text)
    return target


def local_copy(uri: str, settings: TacitSettings) -> Path:
    """A local directory holding the version at ``uri``, downloaded on first use."""
    if not is_remote(uri):
        return Path(uri.removeprefix("file://"))
    target = settings.data_dir / "artifact-cache" / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if not (target / COMPLETE).exists():
        _download(uri, target, settings)
    return target


def _download(uri: str, target: Path, settings: TacitSettings) -> None:
    """Into a directory of this process's own, renamed to ``target`` once complete: a reader never sees a
    half-finished copy, and of two processes downloading the same version the second keeps the first's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.", suffix=".partial", dir=target.parent))
    try:
        fs, path = filesystem(uri, settings)
        fs.get(f"{path.rstrip('/')}/", f"{partial}/", recursive=True)
        (partial / COMPLETE).touch()
        partial.rename(target)
    except OSError:
        if not (target / COMPLETE).exists():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
