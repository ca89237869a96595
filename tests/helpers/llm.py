"""LLM servers for the labeler, validator and summariser tests: a scripted OpenAI-compatible fake for
httpx.MockTransport (both suites), and the handle of the real local one (the integration ``llm_server``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import httpx

from tacit.core.llm import JudgeConfig

URL = "http://judge.test/v1"


@dataclass(frozen=True)
class LLMServer:
    url: str  # OpenAI-compatible base URL, ending in /v1
    model: str  # the name it serves: its folder, the server is pinned to it


def completion(content: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


class Server:
    """Answers each request with the next scripted reply (the last one repeats) and records the requests.

    ``delay`` is the server's time to answer: a slow server, so that the client's concurrent requests overlap
    (the tests count the requests in flight, never the time taken).
    """

    def __init__(self, *replies: httpx.Response | Exception, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.delay = delay
        self.requests: list[dict] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(json.loads(request.content))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if isinstance(reply, Exception):
            raise reply
        return reply


def connect(make, server: Server, **config):
    """``make(config, client)``, a labeler, validator or summariser, talking to ``server``."""
    client = httpx.Client(transport=httpx.MockTransport(server), base_url=URL + "/")
    return make(JudgeConfig(url=URL, model="judge-model", **config), client)
