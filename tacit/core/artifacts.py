"""Model versions at a URI: a local directory, or object storage that every node reads.

Training writes a checkpoint to a local directory, as transformers does; :func:`publish` copies it to
``TACIT_ARTIFACT_URI`` (``s3://``, ``gs://``, any fsspec URL) before the version is registered, so a version
in the registry is always complete. Readers call :func:`local_copy`: a local path is used as it is, a remote
one is downloaded once into the data directory's cache (keyed by the URI, which never changes for a
version) and reused. fsspec does the transfers; credentials come from each store's usual environment.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import fsspec
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


def publish(local_dir: Path, name: str, settings: TacitSettings) -> str:
    """The URI of ``local_dir`` once it is at the artifact location under ``name`` (a run's directory name):
    copied there when that location is remote, else the local path itself."""
    root = settings.artifact_uri
    if root is None or not is_remote(root):
        return str(local_dir)
    uri = f"{root.rstrip('/')}/{name}"
    fs, path = url_to_fs(uri, **storage_options(settings, uri))
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
    if (target / COMPLETE).exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    fs, path = url_to_fs(uri, **storage_options(settings, uri))
    fs.get(f"{path.rstrip('/')}/", f"{partial}/", recursive=True)
    (partial / COMPLETE).touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
