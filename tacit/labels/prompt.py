"""The LLM judge's prompt and the strict reading of its answer.

Written from WildReward's labeling setup: the five categories, conservative (neutral unless the follow-up
says explicitly what the user thought), the previous user message, the assistant reply and the follow-up,
and an answer ``[[n]] reason``. Change ``PROMPT_VERSION`` with any change here: labels record it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tacit.core.domain import FeedbackCandidate, SatisfactionLevel

PROMPT_VERSION = "1"

# Long texts are cut: feedback sits at a follow-up's start, the reply's end is what the user read last.
TEXT_CHARS = 1500

SYSTEM = """You rate how satisfied a user was with an AI assistant's reply, judging only from the user's \
next message (the follow-up). Choose exactly one level:

[1] Rejection: the user explicitly rejects or criticizes the reply ("this is useless", "you are wrong \
again", insults, gives up).
[2] Error correction: the user points out a mistake, a missed constraint or instruction, the wrong \
language or format, or code that does not work.
[3] Neutral: no clear attitude. A new or unrelated question, a plain continuation of the topic, a \
request for more, or anything ambiguous.
[4] Positive engagement: explicitly positive framing AND a meaningful extension (e.g. "great, now do the \
same for Java").
[5] Satisfaction: the user thanks the assistant, says the problem is solved, or that this is all they \
need.

Be conservative: answer 3 unless the follow-up states the user's attitude explicitly. Continuing the \
topic is not praise; politeness alone ("ok", "please") is not satisfaction.

Answer with the level in double brackets, then one short sentence of reason, for example:
[[3]] The user asks a new question without judging the reply."""

REMINDER = "Answer only in the format [[n]] reason, where n is 1, 2, 3, 4 or 5."

_ANSWER = re.compile(r"\s*\[\[([1-5])\]\]\s*(.*)", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    level: SatisfactionLevel
    reason: str


def render(candidate: FeedbackCandidate) -> str:
    """The user message of the judge's chat: the three texts WildReward's labeler saw, each cut to size."""
    query = candidate.query.content[:TEXT_CHARS] if candidate.query else "(none: the assistant spoke first)"
    return (f"Previous user message:\n{query}\n\n"
            f"Assistant reply:\n{candidate.response.content[-TEXT_CHARS:]}\n\n"
            f"User follow-up:\n{candidate.followup.content[:TEXT_CHARS]}")


def parse(answer: str) -> Verdict | None:
    """``[[n]] reason`` at the very start, else None: a level found elsewhere in prose is not trusted."""
    match = _ANSWER.match(answer)
    if match is None:
        return None
    reason = match.group(2).strip().splitlines()[0][:200] if match.group(2).strip() else "no reason given"
    return Verdict(SatisfactionLevel(int(match.group(1))), reason)
