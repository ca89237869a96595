"""A real S3-compatible server (moto's standalone server) on 127.0.0.1, for what keeps files in object storage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tacit.devstack.stack import free_port
from tests.helpers import wait_until

# moto checks no signatures; the clients still need credentials and a region to sign with.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code < 500
    except httpx.TransportError:
        return False


@contextmanager
def s3_server(log: Path, *buckets: str) -> Iterator[str]:
    """The endpoint URL of a fresh server holding empty ``buckets``; stopped by its PID on leaving."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), "the S3 server", log)
        for bucket in buckets:
            httpx.put(f"{url}/{bucket}").raise_for_status()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
