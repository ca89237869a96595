"""Fusion: a reply's follow-up label and its feedback signals, combined into one training target.

A follow-up is read by a labeler and can be misread; a thumb, a rating or a regeneration is the user saying
what they thought of the reply. The rule is deliberately small, so that every target can be explained:

1. Each signal casts a vote: +1 (thumbs up, a rating in the top of its scale, a positive reaction, copy),
   -1 (thumbs down, a rating in the bottom, a negative reaction, regenerate, edit) or 0 (a rating in the
   middle, any other reaction), times its kind's weight. An edit counts against the reply: the user
   rewrote their own message instead of answering it, so the reply missed what they meant. A copy has a
   weight of 0 by default: people copy an answer to use it, but also to quote its error back; give it a
   weight to count it.
2. The votes are summed. No signal or a sum of 0 (signals that cancel out) leaves the follow-up level.
3. A negative sum pushes the level to at most 2 (error correction), a positive one to at least 4 (positive
   engagement): a follow-up that already agrees keeps its own level (a 1 stays 1, a 5 stays 5); a neutral
   one (3) moves to 2 or 4.
4. A follow-up on the other side (a "thanks" under a thumbs down) is a conflict. It is never dropped
   silently: ``conflict`` says who wins, the signals (default: explicit feedback is the user's own verdict,
   a follow-up only the labeler's reading of one), the follow-up, or neither (level 3, which the ``wildfb``
   scheme then leaves out of training). The reason names the conflict either way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tacit.core.domain import Copy, Edit, Rating, Reaction, Regenerate, SatisfactionLevel, SignalEvent, Thumbs

NEGATIVE_CEILING = SatisfactionLevel.ERROR_CORRECTION
POSITIVE_FLOOR = SatisfactionLevel.POSITIVE_ENGAGEMENT

FOLLOWUP = "followup"
SIGNALS = "signals"
CONFLICT = "conflict"


@dataclass(frozen=True)
class FusionRule:
    """The knobs of the rule; the defaults are what ``TACIT_FEEDBACK_FUSION=true`` trains with."""

    weights: Mapping[str, float] = field(default_factory=lambda: {
        "thumbs": 1.0, "rating": 1.0, "reaction": 1.0, "regenerate": 1.0, "edit": 1.0, "copy": 0.0})
    low_rating: float = 0.35  # a rating at or below this fraction of its scale is negative (1-2 of 5, 1-4 of 10)
    high_rating: float = 0.65  # at or above it, positive (4-5 of 5, 7-10 of 10)
    positive_reactions: frozenset[str] = frozenset({"+1", "thumbsup", "👍", "heart", "❤️", "tada", "🎉"})
    negative_reactions: frozenset[str] = frozenset({"-1", "thumbsdown", "👎", "red_flag", "angry", "😠"})
    conflict: Literal["signals", "followup", "neutral"] = "signals"

    def vote(self, signal: SignalEvent) -> int:
        """+1 for the reply, -1 against it, 0 for a signal that says neither (before its kind's weight)."""
        match signal:
            case Thumbs(up=up):
                return 1 if up else -1
            case Rating(score=score, scale=scale):
                position = (score - 1) / (scale - 1)
                return -1 if position <= self.low_rating else 1 if position >= self.high_rating else 0
            case Reaction(name=name):
                return 1 if name in self.positive_reactions else -1 if name in self.negative_reactions else 0
            case Regenerate() | Edit():
                return -1
            case Copy():
                return 1
        return 0


@dataclass(frozen=True)
class Fused:
    """A training target and what decided it: ``followup`` (no signal counted), ``signals`` (they moved or
    confirmed the level) or ``conflict`` (they disagreed with the follow-up; ``reason`` says who won)."""

    level: int
    decided_by: str
    reason: str


DEFAULT_RULE = FusionRule()


def fuse(level: int, signals: Iterable[SignalEvent], rule: FusionRule = DEFAULT_RULE) -> Fused:
    """The target for a reply whose follow-up was labeled ``level`` and that received ``signals``."""
    counted = votes(signals, rule)
    total = sum(vote for _, vote in counted)
    if total == 0:
        reason = "signals cancel out" if counted else "no signal"
        return Fused(level, FOLLOWUP, f"follow-up {level}; {reason}")
    names = ", ".join(describe(signal) for signal, vote in counted if (vote > 0) == (total > 0))
    pushed = min(level, NEGATIVE_CEILING) if total < 0 else max(level, POSITIVE_FLOOR)
    if pushed == level:
        return Fused(level, SIGNALS, f"follow-up {level} confirmed by {names}")
    if level == SatisfactionLevel.NEUTRAL:
        return Fused(pushed, SIGNALS, f"follow-up {level} -> {pushed} by {names}")
    winner = {"signals": pushed, "followup": level, "neutral": int(SatisfactionLevel.NEUTRAL)}[rule.conflict]
    return Fused(winner, CONFLICT, f"follow-up {level} against {names}; {rule.conflict} win: {winner}")


def votes(signals: Iterable[SignalEvent], rule: FusionRule = DEFAULT_RULE,
          kinds: Collection[str] | None = None) -> list[tuple[SignalEvent, float]]:
    """Every signal that counts (of ``kinds``, when given) with its weighted vote, in order."""
    counted = [(signal, rule.vote(signal) * rule.weights.get(signal.signal, 0.0)) for signal in signals
               if kinds is None or signal.signal in kinds]
    return [(signal, vote) for signal, vote in counted if vote]


def describe(signal: SignalEvent) -> str:
    """A signal in a few words, for reasons: ``thumbs down``, ``rating 2/5``, ``reaction +1``."""
    match signal:
        case Thumbs(up=up):
            return f"thumbs {'up' if up else 'down'}"
        case Rating(score=score, scale=scale):
            return f"rating {score}/{scale}"
        case Reaction(name=name):
            return f"reaction {name}"
    return signal.signal
