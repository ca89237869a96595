"""Implicit-feedback mining: a neutral follow-up takes the level of a positive, similar later one.

WildReward's rule: a neutral item is relabelled when one of the next two follow-ups in the same
conversation is positive (level 4 or 5) and the two follow-up messages are semantically similar (cosine of
MiniLM sentence embeddings at or above a threshold). "Can you fix the import error?" then "it works now,
thanks" is the same request, satisfied two turns later; an unrelated "thanks" is not evidence about it.

In a stream the next two follow-ups are not known yet when a neutral item is labeled, so the item waits.
Its derived row is stored with stage ``pending`` (the trainer reads ``refined`` only) and finalised by
:func:`decide` once it can be: as soon as a positive, similar follow-up is among the next two (``refined``
with that level), when two later follow-ups came without one (``refined``, unchanged), or, when the
conversation went quiet, by the idle sweep (``refined``, unchanged; ``PendingStore.finalise_idle`` in the ingest service).

Why the state lives in PostgreSQL and not in the worker's conversation table: labels exist only in the
batch loop, and a Faust table written there would route its changelog record to the partition of whatever
event happens to be current, losing the state on a rebalance. The pending row is written in the same
transaction as the batch that labeled it, and its move to ``refined`` in the same transaction as the batch
whose follow-up decided it; the sink keeps exactly one derived row per item (it deletes the other derived
stages of every row it writes), so a redelivered batch rewrites the same rows, whatever had already moved.

The worker (a batch's items plus the stored pending rows of its conversations) and ``tacit relabel`` (all
stored items of a conversation) call the same :class:`Miner`, so both derive the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING

from tacit.core.domain import (
    PENDING,
    REFINED,
    ConversationKey,
    Followup,
    Label,
    Rated,
    SatisfactionLevel,
    Stored,
)
from tacit.core.settings import TacitSettings

if TYPE_CHECKING:  # the worker imports torch only when it first embeds
    from tacit.labels.encoder import SentenceEncoder

LOOKAHEAD = 2  # later follow-ups that may decide a neutral item (WildReward)

def waits(label: Label) -> bool:
    """A refined neutral label waits for later follow-ups; filtered and non-neutral items never do."""
    return label.stage == REFINED and label.level == SatisfactionLevel.NEUTRAL


def next_followups(item: Followup, known: Sequence[Followup]) -> list[Followup]:
    """The (up to) two follow-ups after ``item`` among ``known``, by turn, one per turn."""
    later = {f.turn: f for f in known if f.turn > item.turn}
    return [later[turn] for turn in sorted(later)[:LOOKAHEAD]]


def decide(label: Label, item: Followup, following: Sequence[Followup],
           cosine: Callable[[Followup, Followup], float], threshold: float) -> Label:
    """``label`` (a waiting one) decided by the next follow-ups seen so far; stage ``pending`` if undecided."""
    for later in following:
        if later.positive and (similarity := cosine(item, later)) >= threshold:
            return replace(label, stage=REFINED, level=later.level, confidence=later.confidence,
                           reason=f"mined: follow-up at turn {later.turn} is level {int(later.level)}, "
                                  f"cosine {similarity:.2f}; {label.reason}")
    return replace(label, stage=REFINED if len(following) == LOOKAHEAD else PENDING)


class Miner:
    """Decides waiting items against the follow-ups known in their conversations, embedding only what it must.

    Only (waiting item, positive later follow-up) pairs are embedded, all texts of a call in one encoder
    batch; most items wait for neutral follow-ups and cost no embedding at all. The encoder is loaded on
    first use (the worker asks for it at start-up, ``tacit relabel`` on the first pair). Blocking: call it
    from an executor.
    """

    def __init__(self, encoder: Callable[[], SentenceEncoder], threshold: float, idle_seconds: float) -> None:
        self._make_encoder = encoder
        self.threshold = threshold
        self.idle_seconds = idle_seconds  # a conversation this long without a message finalises its items

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> Miner | None:
        """The configured miner (the embedding labeler's encoder checkpoint), or None when mining is off."""
        if not settings.mining_enabled:
            return None

        def encoder() -> SentenceEncoder:
            from tacit.labels.embedding import load_encoder

            return load_encoder(settings)

        return cls(encoder, settings.mining_threshold, settings.mining_idle_seconds)

    @cached_property
    def encoder(self) -> SentenceEncoder:
        return self._make_encoder()

    def mine_batch(self, pairs: Sequence[Rated], stored: Sequence[Stored] = (),
                   stored_known: Sequence[Followup] = ()) -> tuple[list[Rated], list[Label]]:
        """Mine a batch of :func:`tacit.refine.pipeline.with_refinements` rows and stored pending items together.

        ``stored_known`` are stored follow-ups after the stored items; the batch's own follow-ups are known
        from its raw rows. Returns the rows (waiting ones decided or ``pending``) and each stored item's label.
        """
        raw, derived = pairs[:len(pairs) // 2], pairs[len(pairs) // 2:]
        known = [*stored_known, *(Followup.of(candidate, label) for candidate, label in raw)]
        waiting = [i for i, (_, label) in enumerate(derived) if waits(label)]
        items = [(Followup.of(derived[i][0], raw[i][1]), derived[i][1]) for i in waiting]
        labels = self.mine([*items, *((s.followup, s.label) for s in stored)], known)
        mined = list(derived)
        for i, label in zip(waiting, labels):
            mined[i] = (derived[i][0], label)
        return [*raw, *mined], labels[len(waiting):]

    def mine(self, waiting: Sequence[tuple[Followup, Label]], known: Sequence[Followup]) -> list[Label]:
        """Each waiting item's label: mined or unchanged (``refined``), or still ``pending``."""
        by_conversation: Mapping[tuple[ConversationKey, str], list[Followup]] = defaultdict(list)
        for followup in known:
            by_conversation[followup.conversation, followup.labeler_id].append(followup)
        following = [next_followups(item, by_conversation[item.conversation, label.labeler_id])
                     for item, label in waiting]
        pairs = [(item.text, later.text) for (item, _), nexts in zip(waiting, following) for later in nexts
                 if later.positive]
        similarities = self._cosines(pairs)
        return [decide(label, item, nexts, lambda a, b: similarities[a.text, b.text], self.threshold)
                for (item, label), nexts in zip(waiting, following)]

    def _cosines(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        if not pairs:
            return {}
        texts = sorted({text for pair in pairs for text in pair})
        vectors = dict(zip(texts, self.encoder.encode(texts)))
        return {(a, b): float(vectors[a] @ vectors[b]) for a, b in pairs}
