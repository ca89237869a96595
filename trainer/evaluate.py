"""How good a reward model is: ordinal metrics on held-out feedback, pairwise accuracy on preference data.

Pairwise accuracy takes a ``score_fn`` (texts -> rewards) rather than a model, so one benchmark run can
score a local checkpoint (``tacit.scoring.RewardScorer``) or the HTTP scoring service and the numbers are comparable.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tacit.domain import Message, Role, SatisfactionLevel
from tacit.layouts import Layout, render
from tacit.ordinal import rewards_from_logits
from trainer.model import ordinal_loss, predicted_classes

ScoreFn = Callable[[list[str]], list[float]]

# ------------------------------------------------------------------------------------------ ordinal metrics


def ordinal_metrics(logits: torch.Tensor, classes: torch.Tensor, levels: Sequence[int]) -> dict[str, float]:
    """Accuracy and mean absolute error in classes, loss, and ROC-AUC of the reward for satisfied (4-5)
    versus unsatisfied (1-2) items when both kinds are present."""
    predicted = predicted_classes(logits)
    metrics = {
        "accuracy": (predicted == classes).float().mean().item(),
        "mae": (predicted - classes).abs().float().mean().item(),
        "loss": ordinal_loss(logits, classes).item(),
    }
    rewards = rewards_from_logits(logits)
    level = torch.tensor(levels, device=classes.device)[classes]
    positive = rewards[level >= SatisfactionLevel.POSITIVE_ENGAGEMENT]
    negative = rewards[level <= SatisfactionLevel.ERROR_CORRECTION]
    if len(positive) and len(negative):
        metrics["roc_auc"] = roc_auc(positive, negative)
    return metrics


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U with average ranks)."""
    scores = torch.cat([positive, negative]).double()
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    first_rank = counts.cumsum(0) - counts + 1
    ranks = (first_rank + (counts - 1) / 2)[inverse]
    n_pos, n_neg = len(positive), len(negative)
    return ((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


# ----------------------------------------------------------------------------------- preference benchmarks


@dataclass(frozen=True)
class PreferencePair:
    history: tuple[Message, ...]
    query: str
    chosen: str
    rejected: str


_TURN = re.compile(r"\n\n(Human|Assistant): ")
_ROLES = {"Human": Role.USER, "Assistant": Role.ASSISTANT}


def parse_transcript(text: str) -> list[Message]:
    """An HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") -> its messages, oldest first."""
    parts = _TURN.split(text)  # [preamble, role, content, role, content, ...]
    return [
        Message(_ROLES[role], content.strip(), turn)
        for turn, (role, content) in enumerate(zip(parts[1::2], parts[2::2]))
    ]


def pair_from_record(record: dict[str, Any]) -> PreferencePair | None:
    """A chosen/rejected record -> a pair, None when the two transcripts do not share everything but their
    final assistant reply, or those replies are identical (a few HH-RLHF records are like that)."""
    chosen, rejected = parse_transcript(record["chosen"]), parse_transcript(record["rejected"])
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-2].role is not Role.USER:
        return None
    if chosen[-1].role is not Role.ASSISTANT or rejected[-1].role is not Role.ASSISTANT:
        return None
    if chosen[-1].content == rejected[-1].content:
        return None
    return PreferencePair(tuple(chosen[:-2]), chosen[-2].content, chosen[-1].content, rejected[-1].content)


def load_hh_pairs(path: Path) -> list[PreferencePair]:
    """Pairs from an HH-RLHF JSONL file, gzipped or plain; malformed records are left out."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as lines:
        pairs = (pair_from_record(json.loads(line)) for line in lines if line.strip())
        return [pair for pair in pairs if pair is not None]


def pairwise_accuracy(
    score_fn: ScoreFn, pairs: Sequence[PreferencePair], *, layout: Layout = "compact", batch_size: int = 64
) -> float:
    """Share of pairs whose chosen reply scores strictly above the rejected one.

    Pairs go to ``score_fn`` ``batch_size`` at a time, so a remote service never gets a huge request.
    """
    if not pairs:
        raise ValueError("No preference pairs to evaluate; check the benchmark file.")
    wins = 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        scores = score_fn(
            [render(p.history, p.query, p.chosen, layout) for p in chunk]
            + [render(p.history, p.query, p.rejected, layout) for p in chunk]
        )
        wins += sum(chosen > rejected for chosen, rejected in zip(scores[: len(chunk)], scores[len(chunk) :]))
    return wins / len(pairs)
