"""Human-annotated follow-ups to fit and evaluate labelers on: EURTAD, DBDC3 and FeedbackQA, mapped to levels.

None of them rates satisfaction with a chat reply in WildReward's five categories, so each is mapped to
what it does say. EURTAD and DBDC3 give only negative (level 2, error correction) or neutral (3) items;
FeedbackQA gives 1, 2, 3 and 5 but is written feedback, not a conversational follow-up.

- **EURTAD** (Petrak et al., 2023; ``eurtad/derived/eurtad_feedback_events.jsonl``): three annotators give
  the user's reaction to the system turn: UR1 ignore and continue, UR2 repeat or rephrase, UR3 make aware
  with a correction, UR4 make aware without one, UR5 ask for clarification. When at least two of the three
  name UR2-UR5, the follow-up reacts to an error: level 2. Otherwise (UR1, no reaction, no majority): 3.
- **DBDC3** (``dbdc3/derived/dbdc3_system_turn_with_followup.jsonl.gz``): 30 crowd workers rate each
  system turn O (no breakdown), T (possible breakdown) or X (breakdown). The majority X is level 2; O and T
  are 3. These votes rate the system turn, not the user's reaction: a labeler that reads the follow-up can
  only find the breakdowns the user remarks on, so expect low recall of level 2 here.
- **FeedbackQA** (Li et al., 2022; ``feedbackqa/<domain>_feedback_<split>.json``): crowd raters read a
  COVID-19 question and the passage a QA system answered with, then rate it (Excellent, Acceptable, Could be
  Improved, Bad) and say why in a sentence. Each (rating, feedback) pair is one item: the passage is the
  reply, the feedback the follow-up. Bad is level 1 (rejection: "this does not answer the question"),
  Could be Improved 2 (names what is missing or wrong), Acceptable 3 (mixed or descriptive: "gives a
  rundown of X but not Y"; no explicit attitude either way), Excellent 5 ("answers the question
  directly": solved). Nothing maps to 4: a rating never extends the conversation. About half the items
  are 1-2, far more than in real chat logs (WildReward: about 17%). The repository has no licence: fit
  and evaluate with it, never copy its text into the project or ship a classifier fitted on it.

The readers give :class:`tacit.labels.datasets.LabeledCandidate`, like the generic ``labeled`` JSONL.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tacit.core.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.labels.datasets import LabeledCandidate

EURTAD_ERROR_REACTIONS = frozenset({"UR2", "UR3", "UR4", "UR5"})
EURTAD_MAJORITY = 2  # of three annotators
FEEDBACKQA_LEVELS = {
    "Bad": SatisfactionLevel.REJECTION, "Could be Improved": SatisfactionLevel.ERROR_CORRECTION,
    "Acceptable": SatisfactionLevel.NEUTRAL, "Excellent": SatisfactionLevel.SATISFACTION,
}
FEEDBACKQA_GLOB = "*_feedback_*.json"


def _lines(path: Path) -> Iterator[dict]:
    from tacit.readers.importers import records

    for raw in records(path):
        yield json.loads(raw)


def _candidate(history: list[Message], query: str | None, response: str, followup: str) -> FeedbackCandidate:
    turn = len(history)
    query_message = Message(Role.USER, query, turn) if query else None
    turn += query_message is not None
    return FeedbackCandidate(
        tenant="eval", conversation_id="eval", user_id=None, history=tuple(history), query=query_message,
        response=Message(Role.ASSISTANT, response, turn), followup=Message(Role.USER, followup, turn + 1))


def _eurtad_level(annotations: list[dict]) -> SatisfactionLevel:
    reactions = sum(1 for a in annotations if a.get("user_reaction") in EURTAD_ERROR_REACTIONS)
    return SatisfactionLevel.ERROR_CORRECTION if reactions >= EURTAD_MAJORITY else SatisfactionLevel.NEUTRAL


def read_eurtad(path: Path) -> list[LabeledCandidate]:
    """Events with a system response and a user follow-up (16 Wizard-of-Wikipedia events have no response)."""
    items = []
    for record in _lines(path):
        if not record["system_response"] or not record["user_feedback_utterance"]:
            continue
        history = []
        for turn in record["history"]:
            history += [Message(Role.USER, turn["utterance"], len(history)),
                        Message(Role.ASSISTANT, turn["response"], len(history) + 1)]
        candidate = _candidate(history, record["prior_user_utterance"], record["system_response"],
                               record["user_feedback_utterance"])
        items.append(LabeledCandidate(candidate, _eurtad_level(record["annotations"])))
    return items


def read_dbdc3(path: Path) -> list[LabeledCandidate]:
    """System turns with a user follow-up; the user turn before the system turn is the query."""
    items = []
    for record in _lines(path):
        if not record.get("user_followup"):
            continue
        turns = [Message(Role.USER if t["speaker"] == "U" else Role.ASSISTANT, t["utterance"], i)
                 for i, t in enumerate(record["history"])]
        query = turns.pop().content if turns and turns[-1].role is Role.USER else None
        majority = Counter(record["breakdown_counts"]).most_common(1)[0][0]
        level = SatisfactionLevel.ERROR_CORRECTION if majority == "X" else SatisfactionLevel.NEUTRAL
        items.append(LabeledCandidate(_candidate(turns, query, record["system_utterance"],
                                                 record["user_followup"]), level))
    return items


def read_feedbackqa(path: Path) -> list[LabeledCandidate]:
    """One item per rater of each answer; ``path`` is one ``<domain>_feedback_<split>.json`` or their folder."""
    files = sorted(path.glob(FEEDBACKQA_GLOB)) if path.is_dir() else [path]
    items = []
    for file in files:
        for record in json.loads(file.read_text(encoding="utf-8")):
            response = record["passage"]["reference"]["section_content"]
            for rating, feedback in zip(record["rating"], record["feedback"], strict=True):
                if rating in FEEDBACKQA_LEVELS and feedback.strip() and response.strip():
                    items.append(LabeledCandidate(_candidate([], record["question"], response, feedback),
                                                  FEEDBACKQA_LEVELS[rating]))
    return items
