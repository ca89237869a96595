"""How one (history, query, response) item becomes the single text a reward model reads.

Trainer and scoring service must render identically, so the layouts live here, below both. The
``wildreward`` layout follows WildReward-8B's sectioned input (task description, scoring criteria [1]..[5],
"Context (History)", "User Query", "Assistant Response", output instruction) so that published WildReward
checkpoints can be served unchanged; ``compact`` drops the instructions, which a small encoder such as
MiniLM cannot use anyway, and spends its short context on the conversation itself. ``exchange`` keeps only
the query and the reply, ``reply`` only the reply: narrower views the quality benchmark compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

Layout = Literal["compact", "wildreward", "exchange", "reply"]
LAYOUTS: tuple[str, ...] = ("compact", "wildreward", "exchange", "reply")


class Turn(Protocol):
    @property
    def role(self) -> object: ...
    @property
    def content(self) -> str: ...


WILDREWARD_TASK = (
    "You are an expert at judging user satisfaction. Given a conversation between a user and an AI "
    "assistant, predict how satisfied the user is with the assistant's final response, on a scale of 1 to 5."
)
WILDREWARD_CRITERIA = (
    "[1] Rejection: the user explicitly rejects or criticizes the response.\n"
    "[2] Error correction: the user points out a mistake, a missing constraint, the wrong language or "
    "broken code.\n"
    "[3] Neutral: no clear attitude; a new or unrelated question.\n"
    "[4] Positive engagement: explicit positive framing together with a meaningful extension.\n"
    "[5] Satisfaction: the user thanks the assistant or says the problem is solved."
)
WILDREWARD_OUTPUT = "Output the satisfaction score of the assistant response (1-5)."


def _role_name(role: object) -> str:
    return str(getattr(role, "value", role)).capitalize()


def _history_text(history: Sequence[Turn]) -> str:
    return "\n".join(f"{_role_name(turn.role)}: {turn.content}" for turn in history)


def render(
    history: Sequence[Turn],
    query: str,
    response: str,
    layout: Layout = "compact",
    persona: str | None = None,
) -> str:
    """The model input for one item; ``persona`` adds a user-profile section when given."""
    if layout == "wildreward":
        sections = [
            WILDREWARD_TASK,
            "Scoring criteria:\n" + WILDREWARD_CRITERIA,
            *([f"User Persona:\n{persona}"] if persona else []),
            "Context (History):\n" + (_history_text(history) or "(none)"),
            f"User Query:\n{query}",
            f"Assistant Response:\n{response}",
            WILDREWARD_OUTPUT,
        ]
        return "\n\n".join(sections)
    if layout in ("compact", "exchange", "reply"):
        parts = [f"Persona: {persona}"] if persona else []
        if history and layout == "compact":
            parts.append(_history_text(history))
        if layout != "reply":
            parts.append(f"User: {query}")
        parts.append(f"Assistant: {response}")
        return "\n".join(parts)
    raise ValueError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
