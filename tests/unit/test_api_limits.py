"""The body cap of the HTTP services: refused before anything reads or parses the body."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from tacit.core.api_limits import BodyLimit


def capped_app(max_bytes: int) -> tuple[FastAPI, list[int]]:
    app, read = FastAPI(), []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        read.append(len(await request.body()))
        return {"bytes": read[-1]}

    app.add_middleware(BodyLimit, max_bytes=max_bytes, setting="TACIT_X_MAX_BODY_BYTES")
    return app, read


def test_a_body_within_the_cap_passes_and_one_over_it_is_413_unread() -> None:
    app, read = capped_app(1024)
    with TestClient(app) as client:
        assert client.post("/echo", content=b"x" * 1024).json() == {"bytes": 1024}
        over = client.post("/echo", content=b"x" * 1025)
    assert over.status_code == 413 and "TACIT_X_MAX_BODY_BYTES" in over.json()["detail"]
    assert read == [1024]  # the handler never saw the large body


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap() -> None:
    app, read = capped_app(1024)

    def chunks():
        for _ in range(8):
            yield b"x" * 512

    with TestClient(app) as client:
        answer = client.post("/echo", content=chunks())  # no Content-Length: sent chunked
    assert answer.status_code == 413
    assert read == []


def test_the_scoring_service_refuses_a_body_over_its_cap(tmp_path) -> None:
    from tacit.core.settings import TacitSettings
    from tests.helpers.serving import tiny_scoring_app

    settings = TacitSettings(precision="float32", serve_max_body_bytes=4096)
    with TestClient(tiny_scoring_app(tmp_path, settings)) as client:
        small = client.post("/get_reward", json={"query": ["hi"]})
        large = client.post("/get_reward", json={"query": ["x" * 5000]})
    assert small.status_code == 200
    assert large.status_code == 413 and "TACIT_SERVE_MAX_BODY_BYTES" in large.json()["detail"]
