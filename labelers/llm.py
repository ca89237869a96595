"""The LLM labeler: an OpenAI-compatible chat-completions judge (vLLM, `transformers serve`, hosted APIs).

``label`` is called from the worker's executor thread with a batch of up to ``TACIT_SINK_BATCH_SIZE``
items, so a plain blocking client on a small thread pool is all the concurrency needed: at most
``TACIT_LLM_CONCURRENCY`` requests are in flight, identical items in a batch are asked once, and an LRU
cache remembers answers across batches (replays and redeliveries re-ask nothing). Transport errors, 429
and 5xx answers are retried with exponential backoff; when they persist, a :class:`TacitError` names the
setting to check, and the worker retries the whole batch later rather than store guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import httpx
import tenacity

from labelers.prompt import PROMPT_VERSION, REMINDER, SYSTEM, Verdict, parse, render
from tacit.domain import FeedbackCandidate, Label, SatisfactionLevel
from tacit.errors import TacitError
from tacit.settings import TacitSettings

# A parsed judgement is trusted above the cascade's threshold; the fallback for an unparseable answer is a
# neutral that nothing downstream should mistake for a judgement.
JUDGED_CONFIDENCE = 0.9
UNPARSEABLE = Verdict(SatisfactionLevel.NEUTRAL, "unparseable judge answer")
UNPARSEABLE_CONFIDENCE = 0.1
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
            raise TacitError("The llm labeler needs TACIT_LLM_URL (an OpenAI-compatible base URL such as "
                             "http://127.0.0.1:8000/v1) and TACIT_LLM_MODEL (the model name it serves).")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(settings.llm_url, settings.llm_model, key, settings.llm_concurrency, settings.llm_timeout_s,
                   settings.llm_retries, settings.llm_max_tokens, settings.llm_cache_size)


class RetryableStatus(Exception):
    """The server is overloaded or failing (429, 5xx): worth asking again after a pause."""


class LLMLabeler:
    labeler_id = "llm"

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None) -> None:
        self.config = config
        self.version = f"{PROMPT_VERSION}+{config.model[-60:]}"  # the column holds 64 characters
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = client or httpx.Client(
            base_url=config.url.rstrip("/") + "/", headers=headers, timeout=config.timeout_s,
            limits=httpx.Limits(max_connections=config.concurrency))
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="llm-judge")
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((httpx.TransportError, RetryableStatus)),
            wait=tenacity.wait_exponential(multiplier=BACKOFF_S, max=30),
            stop=tenacity.stop_after_attempt(config.retries + 1), reraise=True)
        self.judge = lru_cache(maxsize=config.cache_size)(self._judge)

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> LLMLabeler:
        return cls(JudgeConfig.from_settings(settings))

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        prompts = [render(candidate) for candidate in candidates]
        unique = list(dict.fromkeys(prompts))
        verdicts = dict(zip(unique, self._pool.map(self.judge, unique), strict=True))
        return [self._label(verdicts[prompt]) for prompt in prompts]

    def _label(self, verdict: Verdict) -> Label:
        confidence = UNPARSEABLE_CONFIDENCE if verdict is UNPARSEABLE else JUDGED_CONFIDENCE
        return Label(level=verdict.level, confidence=confidence, reason=f"llm: {verdict.reason}",
                     labeler_id=self.labeler_id, labeler_version=self.version)

    def _judge(self, prompt: str) -> Verdict:
        """Ask; on an answer not in the format, show the model its answer and ask once more."""
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        answer = self._complete(messages)
        verdict = parse(answer)
        if verdict is None:
            messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": REMINDER}]
            verdict = parse(self._complete(messages))
        return verdict or UNPARSEABLE

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.config.model, "messages": messages, "temperature": 0,
                "max_tokens": self.config.max_tokens}
        try:
            response = self._retrying(self._post, body)
        except (httpx.TransportError, RetryableStatus) as exc:
            raise TacitError(f"The LLM judge at {self.config.url} did not answer after "
                             f"{self.config.retries + 1} attempts ({exc!r}); check TACIT_LLM_URL and that the "
                             "server is up.") from exc
        if response.is_error:
            raise TacitError(f"The LLM judge at {self.config.url} refused the request ({response.status_code}: "
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
