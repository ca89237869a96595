"""One OpenAI-compatible chat-completions endpoint (vLLM, `transformers serve`, hosted APIs), asked strictly.

Everything Tacit asks an LLM goes through :class:`StrictChat`: the labeler (``[[n]] reason``), the refusal
validator (``[[harmful]] reason``) and the persona summariser. Each asks one question per item and reads
the answer with its own strict parser; an answer that does not parse is shown back to the model with a
reminder of the format, once, and is ``None`` if it still does not parse: the caller decides what that
means, never a guess from prose.

Callers run in the worker's executor thread or in a CLI with a batch of items, so a plain blocking client
on a small thread pool is all the concurrency needed: at most ``TACIT_LLM_CONCURRENCY`` requests are in
flight, identical questions in a batch are asked once, and an LRU cache remembers answers across batches
(replays and redeliveries re-ask nothing). Transport errors, 429 and 5xx answers are retried with
exponential backoff; when they persist, a :class:`TacitError` names the setting to check, and the worker
retries the whole batch later rather than store guesses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import httpx
import tenacity
from prometheus_client import Counter

from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings

T = TypeVar("T")
BACKOFF_S = 0.5


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    api_key: str | None = None
    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 3
    max_tokens: int = 96
    cache_size: int = 10_000

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> JudgeConfig:
        if not settings.llm_url or not settings.llm_model:
            raise TacitError("The LLM (the llm labeler, TACIT_REFUSAL_VALIDATOR=llm, `personas build --method "
                             "llm`) needs TACIT_LLM_URL (an OpenAI-compatible base URL such as "
                             "http://127.0.0.1:8000/v1) and TACIT_LLM_MODEL (the model name it serves).")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(settings.llm_url, settings.llm_model, key, settings.llm_concurrency, settings.llm_timeout_s,
                   settings.llm_retries, settings.llm_max_tokens, settings.llm_cache_size)


# Process-wide and in no registry of its own: whichever service runs the LLM (the stream worker) adds it
# to the registry it serves, so a judge that drifts out of its format shows up on /metrics.
UNPARSEABLE_ANSWERS = Counter("tacit_llm_unparseable_answers", "LLM answers still not in the required format "
                              "after the reminder, by question.", ["question"], registry=None)


@dataclass(frozen=True)
class Question(Generic[T]):
    """What is asked of every item: its name (for metrics), the instructions, the format reminder, and the
    strict reader."""

    name: str
    system: str
    reminder: str
    parse: Callable[[str], T | None]


class RetryableStatus(Exception):
    """The server is overloaded or failing (429, 5xx): worth asking again after a pause."""


class StrictChat(Generic[T]):
    def __init__(self, config: JudgeConfig, question: Question[T], client: httpx.Client | None = None) -> None:
        self.config = config
        self.question = question
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = client or httpx.Client(
            base_url=config.url.rstrip("/") + "/", headers=headers, timeout=config.timeout_s,
            limits=httpx.Limits(max_connections=config.concurrency))
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="llm")
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((httpx.TransportError, RetryableStatus)),
            wait=tenacity.wait_exponential(multiplier=BACKOFF_S, max=30),
            stop=tenacity.stop_after_attempt(config.retries + 1), reraise=True)
        self.ask = lru_cache(maxsize=config.cache_size)(self._ask)

    def ask_all(self, prompts: Sequence[str]) -> list[T | None]:
        """Each prompt's parsed answer (None: unparseable), identical prompts asked once, in parallel."""
        unique = list(dict.fromkeys(prompts))
        answers = dict(zip(unique, self._pool.map(self.ask, unique), strict=True))
        return [answers[prompt] for prompt in prompts]

    def _ask(self, prompt: str) -> T | None:
        """Ask; on an answer not in the format, show the model its answer and ask once more."""
        messages = [{"role": "system", "content": self.question.system}, {"role": "user", "content": prompt}]
        answer = self._complete(messages)
        parsed = self.question.parse(answer)
        if parsed is None:
            messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": self.question.reminder}]
            parsed = self.question.parse(self._complete(messages))
            if parsed is None:
                UNPARSEABLE_ANSWERS.labels(question=self.question.name).inc()
        return parsed

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.config.model, "messages": messages, "temperature": 0,
                "max_tokens": self.config.max_tokens}
        try:
            response = self._retrying(self._post, body)
        except (httpx.TransportError, RetryableStatus) as exc:
            raise TacitError(f"The LLM at {self.config.url} did not answer after {self.config.retries + 1} "
                             f"attempts ({exc!r}); check TACIT_LLM_URL and that the server is up.") from exc
        if response.is_error:
            raise TacitError(f"The LLM at {self.config.url} refused the request ({response.status_code}: "
                             f"{response.text[:200]}); check TACIT_LLM_MODEL and TACIT_LLM_API_KEY.")
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TacitError(f"{self.config.url} is not an OpenAI-compatible chat-completions endpoint "
                             f"({exc!r}); check TACIT_LLM_URL (it ends before /chat/completions).") from exc

    def _post(self, body: dict) -> httpx.Response:
        response = self.client.post("chat/completions", json=body)
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableStatus(f"{response.status_code} {response.text[:200]}")
        return response
