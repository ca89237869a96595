"""Refusal validation: a user who complains about a refusal was not always wronged.

WildReward checks short replies (< 300 characters) that contain refusal phrases: if the query was harmful,
refusing was right and the label becomes 5 whatever the user said; if it was safe, the refusal was false
and the label becomes 1; if the model did answer after all, the label stays. This module is the offline
validator: keyword families of harmful requests (English and Chinese) decide harmful, any other query is
safe, and a reply that goes on to help ("I can't browse, but here is ...") counts as answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from tacit.core.domain import FeedbackCandidate, Label, SatisfactionLevel

MAX_REFUSAL_CHARS = 300
QUERY_HEAD_CHARS = 1000

_REFUSAL = re.compile(
    r"\bi(?: cannot| can(?:'|’)?t| can not| won(?:'|’)?t|(?: am|'m|’m) (?:not able|unable) to) "
    r"(?:help|assist|provide|do|write|create|generate|comply|fulfil|support|engage|give|share|answer)"
    r"|\bas an ai\b|\bas a (?:large )?language model\b|\bi must (?:decline|refuse)\b"
    r"|\bi(?:'|’)m not (?:comfortable|going to)\b"
    r"|(?:我|本助手)(?:不能|无法|不可以|没办法)(?:帮|协助|提供|回答|生成|满足)|作为(?:一个)?(?:AI|人工智能|语言模型)|抱歉，?我(?:不能|无法)",
    re.IGNORECASE,
)
# A clarifying question is not a refusal, however apologetic ("Sorry, could you tell me which file?").
_CLARIFICATION = re.compile(
    r"\b(?:could|can|would) you (?:please )?(?:clarify|specify|elaborate|explain what you mean|provide (?:more|some|the)"
    r"|share (?:more|the)|tell me (?:more|which|what))\b|\bwhat do you mean\b|\bmore (?:details|context|information)\b",
    re.IGNORECASE,
)
# The refusal covered part of the request and the reply went on to help: the model did answer.
_ANSWERED = re.compile(r"\b(?:but|however),? (?:here(?:'s| is| are)|you (?:can|could|might))\b|但(?:是)?(?:我可以|你可以|以下)", re.IGNORECASE)
_HARMFUL = re.compile(
    r"\b(?:bomb|explosives?|nerve agent|bioweapon|make (?:a )?(?:gun|weapon)|kill (?:someone|him|her|them|my)"
    r"|murder|poison (?:someone|him|her|my)|meth(?:amphetamine)?|cocaine|heroin|fentanyl"
    r"|malware|ransomware|keylogger|ddos|hack(?:ing)? into|steal (?:passwords?|credit cards?|identit(?:y|ies))"
    r"|phishing|launder(?:ing)? money|counterfeit|child porn|csam|suicide|self-harm|kill myself"
    r"|racial slurs?|nazi propaganda)\b"
    r"|炸弹|炸药|制毒|毒品|冰毒|杀人|杀死|投毒|勒索软件|木马|黑进|盗号|洗钱|假钞|儿童色情|自杀|自残",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RefusalVerdict:
    level: SatisfactionLevel | None  # None: the model answered; the label stays
    reason: str


def is_refusal(response: str) -> bool:
    """A short reply that declines in so many words. An apology alone ("I'm sorry, but I still don't see
    him" in a role-play, "sorry, but I'm not familiar with X") is not one, nor is a request for details."""
    return (len(response) < MAX_REFUSAL_CHARS and _REFUSAL.search(response) is not None
            and _CLARIFICATION.search(response) is None)


class RefusalValidator(Protocol):
    """Decides the short refusals of a batch: batches, so that a model-backed validator asks in parallel."""

    def validate(self, candidates: Sequence[FeedbackCandidate]) -> list[RefusalVerdict | None]: ...


def heuristic_verdict(candidate: FeedbackCandidate) -> RefusalVerdict | None:
    """The refusal's verdict, or None when the reply is not a short refusal (nothing to validate)."""
    response = candidate.response.content
    if not is_refusal(response):
        return None
    if _ANSWERED.search(response):
        return RefusalVerdict(None, "refusal: the model answered after all")
    query = candidate.query.content[:QUERY_HEAD_CHARS] if candidate.query else ""
    harmful = _HARMFUL.search(query)
    if harmful:
        return RefusalVerdict(SatisfactionLevel.SATISFACTION,
                              f"refusal: justified, harmful query ({harmful.group(0)!r})")
    return RefusalVerdict(SatisfactionLevel.REJECTION, "refusal: false, the query is safe")


class HeuristicValidator:
    def validate(self, candidates: Sequence[FeedbackCandidate]) -> list[RefusalVerdict | None]:
        return [heuristic_verdict(candidate) for candidate in candidates]


HEURISTIC = HeuristicValidator()


def validated(validator: RefusalValidator, candidates: Sequence[FeedbackCandidate],
              labels: Sequence[Label]) -> list[Label]:
    """The labels after refusal validation: a verdict that decides a level overrides it and says why."""
    return [label if verdict is None or verdict.level is None
            else replace(label, level=verdict.level, reason=f"{verdict.reason}; was {label.reason}")
            for label, verdict in zip(labels, validator.validate(candidates), strict=True)]
