"""The client of the scoring service, for ``tacit score``, the demo and training jobs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

from tacit.core.errors import TacitError
from tacit.model.schema import Item, RewardResponse, ScoreRequest, ScoreResponse


class ScoringError(TacitError):
    """The service refused the request or could not be reached; the message says why."""


class ScoringClient:
    """``connect_wait_s`` bounds how long a call keeps retrying a refused connection, because a server
    that was just started refuses them until its model has loaded. ``api_key`` is sent with every call
    (a service that requires keys answers 401 without one)."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0, connect_wait_s: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_wait_s = connect_wait_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def score(self, items: Sequence[Item]) -> ScoreResponse:
        """Validated here first, so a malformed item fails before it travels."""
        request = ScoreRequest(items=list(items))
        return ScoreResponse.model_validate(self._post("/v1/score", request.model_dump(mode="json")))

    def get_reward(self, texts: Sequence[str]) -> list[float]:
        return RewardResponse.model_validate(self._post("/get_reward", {"query": list(texts)})).rewards

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        response = self._send(path, payload)
        if response.status_code in (401, 403):
            raise ScoringError(f"The scoring service refused the API key: {response.json().get('detail')} "
                               "Pass a valid key (TACIT_API_KEY for `tacit score`).")
        if response.status_code == 422:
            raise ScoringError(f"The scoring service refused the request: {_reasons(response)}")
        if response.is_error:
            answer = f"{response.status_code}: {response.text[:500]}"
            raise ScoringError(f"{self.base_url}{path} answered {answer}")
        return response.json()

    def _send(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        deadline = time.monotonic() + self.connect_wait_s
        delay = 0.1
        while True:
            try:
                return self._http.post(path, json=payload)
            except httpx.ConnectError as error:
                if time.monotonic() + delay > deadline:
                    raise ScoringError(
                        f"Cannot reach the scoring service at {self.base_url} ({error}): start it with "
                        "`tacit serve`, or check the URL."
                    ) from error
                time.sleep(delay)
                delay = min(2 * delay, 1.0)


def _reasons(response: httpx.Response) -> str:
    """FastAPI's validation detail as one line, e.g. ``items.0.query: Field required``."""
    detail = response.json().get("detail")
    if not isinstance(detail, list):
        return str(detail)
    return "; ".join(f"{_field(error['loc'])}: {error['msg']}" for error in detail)


def _field(location: list[str | int]) -> str:
    return ".".join(str(part) for part in location if part != "body")
