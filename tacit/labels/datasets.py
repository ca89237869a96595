"""Labeled follow-ups to fit (and later evaluate) model-backed labelers on.

Two sources: a JSONL of human (or LLM) labels, one item per line, and a conversation log in any format
`tacit replay` reads, labeled by a teacher labeler. The second is how the shipped embedding classifier is
made from the bundled sample: the cheap rules distilled into a model that generalises past their phrases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.labels.base import Labeler

LABELED_FORMAT = "labeled"
TEACHER_BATCH = 500
# Keeps the rules' neutral default (0.5) and everything explicit; drops fallbacks such as an LLM judge's
# unparseable answers, which are neutral by default rather than by judgement.
TEACHER_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class LabeledCandidate:
    candidate: FeedbackCandidate
    level: SatisfactionLevel


def read_labeled(path: Path) -> list[LabeledCandidate]:
    """``{"history": [{"role", "content"}], "query", "response", "followup", "level"}`` per line (gzip ok)."""
    from tacit.readers.importers import records

    items = []
    for line_number, raw in enumerate(records(path), start=1):
        try:
            items.append(_labeled(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            raise TacitError(f"{path}:{line_number}: not a labeled item ({exc!r}); each line needs "
                             "response, followup and level 1-5, optionally history and query.") from None
    return items


def _labeled(record: dict) -> LabeledCandidate:
    history = tuple(Message(Role(m["role"]), m["content"], turn)
                    for turn, m in enumerate(record.get("history", ())))
    turn = len(history)
    query = Message(Role.USER, record["query"], turn) if record.get("query") else None
    turn += query is not None
    candidate = FeedbackCandidate(
        tenant="labeled", conversation_id="labeled", user_id=None, history=history, query=query,
        response=Message(Role.ASSISTANT, record["response"], turn),
        followup=Message(Role.USER, record["followup"], turn + 1),
    )
    return LabeledCandidate(candidate, SatisfactionLevel(int(record["level"])))


def log_candidates(path: Path, format_name: str | None) -> Iterator[FeedbackCandidate]:
    """Every (assistant reply, user follow-up) pair of a conversation log, found as the worker finds them."""
    from tacit.core.conversations import ConversationWindow, observe
    from tacit.readers.importers import ImportReport, read_conversations

    for events in read_conversations(path, "labeled", ImportReport(), format_name):
        window = ConversationWindow()
        for event in events:
            observation = observe(window, event, capacity=len(events))
            window = observation.window
            yield from observation.candidates


def teacher_labeled(path: Path, format_name: str | None, teacher: Labeler) -> list[LabeledCandidate]:
    """The log's candidates with the teacher's labels, except those it gives little confidence."""
    items = []
    candidates = log_candidates(path, format_name)
    while batch := tuple(islice(candidates, TEACHER_BATCH)):
        items += [LabeledCandidate(candidate, label.level)
                  for candidate, label in zip(batch, teacher.label(batch), strict=True)
                  if label.confidence >= TEACHER_MIN_CONFIDENCE]
    return items


def load_items(path: Path, format_name: str, teacher: Labeler) -> tuple[list[LabeledCandidate], str]:
    """The items of ``path`` and a short name of their source (stored with the fitted classifier).

    ``format_name`` is :data:`LABELED_FORMAT` for labeled JSONL, else a `tacit replay` format whose
    candidates ``teacher`` labels.
    """
    if format_name == LABELED_FORMAT:
        items, source = read_labeled(path), path.name
    else:
        items = teacher_labeled(path, format_name, teacher)
        source = f"{teacher.labeler_id}-{teacher.version}:{path.name}"
    if not items:
        raise TacitError(f"{path} holds no labeled follow-ups; check --format ({LABELED_FORMAT} or a "
                         "`tacit replay` format).")
    return items, source
