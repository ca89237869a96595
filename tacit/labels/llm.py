"""The LLM labeler: an OpenAI-compatible chat-completions judge (vLLM, `transformers serve`, hosted APIs).

The prompt and its strict ``[[n]] reason`` reader are in :mod:`tacit.labels.prompt`; the client machinery
(concurrency limit, cache, retries with backoff, errors that name the setting) is :mod:`tacit.core.llm`,
shared with the refusal validator and the persona summariser.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from tacit.core.domain import FeedbackCandidate, Label, SatisfactionLevel
from tacit.core.llm import JudgeConfig, Question, StrictChat
from tacit.core.settings import TacitSettings
from tacit.labels.prompt import PROMPT_VERSION, REMINDER, SYSTEM, Verdict, parse, render

# A parsed judgement is trusted above the cascade's threshold; the fallback for an unparseable answer is a
# neutral that nothing downstream should mistake for a judgement.
JUDGED_CONFIDENCE = 0.9
UNPARSEABLE = Verdict(SatisfactionLevel.NEUTRAL, "unparseable judge answer")
UNPARSEABLE_CONFIDENCE = 0.1
JUDGEMENT = Question("judgement", SYSTEM, REMINDER, parse)


class LLMLabeler:
    labeler_id = "llm"

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None) -> None:
        self.version = f"{PROMPT_VERSION}+{config.model[-60:]}"  # the column holds 64 characters
        self.judge = StrictChat(config, JUDGEMENT, client)

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> LLMLabeler:
        return cls(JudgeConfig.from_settings(settings))

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        verdicts = self.judge.ask_all([render(candidate) for candidate in candidates])
        return [self._label(verdict or UNPARSEABLE) for verdict in verdicts]

    def _label(self, verdict: Verdict) -> Label:
        confidence = UNPARSEABLE_CONFIDENCE if verdict is UNPARSEABLE else JUDGED_CONFIDENCE
        return Label(level=verdict.level, confidence=confidence, reason=f"llm: {verdict.reason}",
                     labeler_id=self.labeler_id, labeler_version=self.version)
