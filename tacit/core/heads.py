"""Signal heads: what a reward model may predict of a reply besides the user's satisfaction, and where
each one's training target comes from.

The ordinal satisfaction head reads the follow-up label (fused with the signals, by default). A model may
also carry binary heads on the same backbone, each learning one kind of feedback on its own instead of
through the fused level:

- ``thumbs_up``: P(the user's explicit verdict on the reply is positive). Its target is the sign of the
  thumbs, reactions and ratings on the reply, voted as fusion votes them (:func:`tacit.core.fusion.votes`);
  a reply without such a signal, or whose signals cancel out, teaches this head nothing.
- ``continue``: P(the user sent another message after the reply). Every follow-up-labeled reply was
  continued, so this head also needs the replies that ended their conversation, which have no follow-up
  label and teach only this head.

Each example carries an optional target per head; a head's loss leaves out the examples without one.
"""

from __future__ import annotations

from collections.abc import Iterable

from tacit.core.domain import SignalEvent
from tacit.core.fusion import DEFAULT_RULE, FusionRule, votes

SATISFACTION = "satisfaction"  # the ordinal head every checkpoint has
THUMBS_UP = "thumbs_up"
CONTINUE = "continue"
SIGNAL_HEADS: tuple[str, ...] = (THUMBS_UP, CONTINUE)
VERDICT_KINDS = frozenset({"thumbs", "reaction", "rating"})  # what a thumbs-up head learns from


def thumbs_up_target(signals: Iterable[SignalEvent], rule: FusionRule = DEFAULT_RULE) -> float | None:
    """1.0 when the reply's thumbs, reactions and ratings vote for it, 0.0 against, None when none counted
    or they cancel out. A regeneration or an edit is left out: it says the user wanted something else, not
    what they thought of this reply, and the ordinal head already hears it through fusion."""
    total = sum(vote for _, vote in votes(signals, rule, VERDICT_KINDS))
    return None if total == 0 else float(total > 0)


def signal_heads(names: str | Iterable[str]) -> tuple[str, ...]:
    """The heads named (a list, or a comma-separated string as in ``TACIT_TRAIN_HEADS`` and ``--heads``),
    checked and in their canonical order, each once."""
    listed = names.split(",") if isinstance(names, str) else names
    chosen = {name.strip() for name in listed if name.strip()}
    unknown = chosen - set(SIGNAL_HEADS)
    if unknown:
        raise ValueError(f"Unknown head {', '.join(sorted(unknown))}; choose from {', '.join(SIGNAL_HEADS)}.")
    return tuple(name for name in SIGNAL_HEADS if name in chosen)
