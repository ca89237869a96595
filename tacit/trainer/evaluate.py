"""How good a reward model is: ordinal metrics on held-out feedback, pairwise accuracy on preference data.

Pairwise accuracy takes a ``score_fn`` (texts -> rewards) rather than a model, so one benchmark run can
score a local checkpoint (``tacit.model.scoring.RewardScorer``) or the HTTP scoring service and the numbers are comparable.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from tacit.core.domain import Message, Role, SatisfactionLevel
from tacit.core.examples import RewardExample, head_target
from tacit.model.layouts import Layout, render
from tacit.model.scoring import RewardScorer, canary_rewards
from tacit.readers.transcripts import parse_hh_transcript

ScoreFn = Callable[[list[str]], list[float]]

# ------------------------------------------------------------------------------------------ ordinal metrics

CALIBRATION_BINS = 10
MARGIN_BINS = 5


def ordinal_metrics(
    probabilities: torch.Tensor, classes: torch.Tensor, levels: Sequence[int]
) -> dict[str, Any]:
    """Metrics of (n, K) level probabilities against true classes, as a model is served.

    Accuracy and mean absolute error in classes use CORAL's prediction rule (thresholds passed with
    probability above one half); quadratic-weighted kappa weighs a miss by its squared distance; ECE and the
    reliability table say whether the most likely level is as likely as the model claims; ROC-AUC compares
    the reward of satisfied (4-5) with unsatisfied (1-2) items when both kinds are present.
    """
    probabilities = probabilities.double()
    above = 1.0 - probabilities.cumsum(dim=-1)[:, :-1]  # P(class > k), k = 0..K-2
    predicted = (above > 0.5).sum(dim=-1)
    num_classes = probabilities.shape[-1]
    ece, table = calibration(probabilities, classes)
    metrics: dict[str, Any] = {
        "accuracy": (predicted == classes).double().mean().item(),
        "mae": (predicted - classes).abs().double().mean().item(),
        "qwk": quadratic_weighted_kappa(predicted, classes, num_classes),
        "ece": ece,
        "reliability": table,
    }
    rewards = 1.0 + above.sum(dim=-1)
    level = torch.tensor(levels, device=classes.device)[classes]
    positive = rewards[level >= SatisfactionLevel.POSITIVE_ENGAGEMENT]
    negative = rewards[level <= SatisfactionLevel.ERROR_CORRECTION]
    if len(positive) and len(negative):
        metrics["roc_auc"] = roc_auc(positive, negative)
    return metrics


def quadratic_weighted_kappa(predicted: torch.Tensor, actual: torch.Tensor, num_classes: int) -> float:
    """Cohen's kappa with squared-distance weights: 1 is perfect agreement, 0 what chance gives.

    Defined as 0 when either side uses a single class (no agreement beyond chance can be measured;
    scikit-learn would return NaN).
    """
    if len(actual.unique()) < 2 and len(predicted.unique()) < 2:
        return 0.0
    kappa = cohen_kappa_score(actual.cpu().numpy(), predicted.cpu().numpy(), labels=list(range(num_classes)),
                              weights="quadratic")
    return 0.0 if np.isnan(kappa) else float(kappa)


def calibration(probabilities: torch.Tensor, classes: torch.Tensor) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the most likely level, and its reliability table.

    Items are binned by confidence (equal-width bins); ECE is the item-weighted mean gap between a bin's
    confidence and its accuracy. Empty bins are left out of the table.
    """
    confidence, choice = probabilities.max(dim=-1)
    correct = (choice == classes).double()
    bins = (confidence * CALIBRATION_BINS).long().clamp(max=CALIBRATION_BINS - 1)
    table, ece = [], 0.0
    for b in bins.unique().tolist():
        members = bins == b
        count = int(members.sum())
        mean_confidence, accuracy = confidence[members].mean().item(), correct[members].mean().item()
        ece += count / len(classes) * abs(mean_confidence - accuracy)
        table.append(
            {"low": b / CALIBRATION_BINS, "high": (b + 1) / CALIBRATION_BINS, "count": count,
             "confidence": mean_confidence, "accuracy": accuracy}
        )
    return ece, table


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties counting half."""
    scores = torch.cat([positive, negative]).double().cpu().numpy()
    return float(roc_auc_score(np.r_[np.ones(len(positive)), np.zeros(len(negative))], scores))


# ----------------------------------------------------------------------------------- preference benchmarks


@dataclass(frozen=True)
class PreferencePair:
    history: tuple[Message, ...]
    query: str
    chosen: str
    rejected: str


def pair_from_record(record: dict[str, Any]) -> PreferencePair | None:
    """A chosen/rejected record -> a pair, None when the two transcripts do not share everything but their
    final assistant reply, or those replies are identical (a few HH-RLHF records are like that)."""
    chosen, rejected = parse_hh_transcript(record["chosen"]), parse_hh_transcript(record["rejected"])
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-2].role is not Role.USER:
        return None
    if chosen[-1].role is not Role.ASSISTANT or rejected[-1].role is not Role.ASSISTANT:
        return None
    if chosen[-1].content == rejected[-1].content:
        return None
    return PreferencePair(tuple(chosen[:-2]), chosen[-2].content, chosen[-1].content, rejected[-1].content)


def load_hh_pairs(path: Path) -> list[PreferencePair]:
    """Pairs from an HH-RLHF JSONL file, gzipped or plain; malformed records are left out."""
    pairs = (pair_from_record(record) for record in _jsonl(path))
    return [pair for pair in pairs if pair is not None]


def load_pandalm_pairs(path: Path) -> list[PreferencePair]:
    """Pairs from PandaLM's test set (a JSON list): the response most annotators chose is ``chosen``;
    ties (0), pairs without a majority and the few records whose response is not text (a JSON ``true``
    where the answer was "Yes") are left out."""
    pairs = []
    for record in json.loads(path.read_text(encoding="utf-8")):
        votes = Counter(record[f"annotator{i}"] for i in (1, 2, 3))
        winner, count = votes.most_common(1)[0]
        texts = (record["response1"], record["response2"])
        if winner == 0 or count < 2 or not all(isinstance(text, str) for text in texts):
            continue
        query = "\n\n".join(part for part in (record["instruction"], record["input"]) if part)
        chosen, rejected = (record["response1"], record["response2"])[:: 1 if winner == 1 else -1]
        pairs.append(PreferencePair((), query, chosen, rejected))
    return pairs


def load_prompt_pairs(path: Path) -> list[PreferencePair]:
    """Pairs from ``{"prompt", "chosen", "rejected"}`` JSONL, in TRL's plain or conversational form (a
    message list whose last user turn is the query; chosen/rejected a string or one assistant message)."""
    return [
        PreferencePair(*_prompt(record["prompt"]), _reply(record["chosen"]), _reply(record["rejected"]))
        for record in _jsonl(path)
    ]


def _prompt(prompt: str | list[dict[str, str]]) -> tuple[tuple[Message, ...], str]:
    if isinstance(prompt, str):
        return (), prompt
    messages = tuple(Message(Role(m["role"]), m["content"], turn) for turn, m in enumerate(prompt))
    return messages[:-1], messages[-1].content


def _reply(reply: str | list[dict[str, str]]) -> str:
    return reply if isinstance(reply, str) else reply[-1]["content"]


def load_pairs(path: Path) -> list[PreferencePair]:
    """Any supported preference file, recognised by its content: PandaLM (a JSON list), prompt/chosen/
    rejected JSONL, or HH-RLHF transcripts."""
    if path.suffix == ".json":
        return load_pandalm_pairs(path)
    first = next(iter(_jsonl(path)), {})
    return load_prompt_pairs(path) if "prompt" in first else load_hh_pairs(path)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as lines:
        yield from (json.loads(line) for line in lines if line.strip())


def pair_scores(
    score_fn: ScoreFn, pairs: Sequence[PreferencePair], *, layout: Layout = "compact", batch_size: int = 64
) -> list[tuple[float, float]]:
    """(chosen, rejected) reward of every pair.

    Pairs go to ``score_fn`` ``batch_size`` at a time, so a remote service never gets a huge request.
    """
    if not pairs:
        raise ValueError("No preference pairs to evaluate; check the benchmark file.")
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rewards = score_fn(
            [render(p.history, p.query, p.chosen, layout) for p in chunk]
            + [render(p.history, p.query, p.rejected, layout) for p in chunk]
        )
        scores += zip(rewards[: len(chunk)], rewards[len(chunk) :])
    return scores


def pairwise_accuracy(
    score_fn: ScoreFn, pairs: Sequence[PreferencePair], *, layout: Layout = "compact", batch_size: int = 64
) -> float:
    """Share of pairs whose chosen reply scores strictly above the rejected one."""
    return _accuracy(pair_scores(score_fn, pairs, layout=layout, batch_size=batch_size))


def _accuracy(scores: Sequence[tuple[float, float]]) -> float:
    return sum(chosen > rejected for chosen, rejected in scores) / len(scores)


def margin_curve(scores: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    """Pairwise accuracy by score margin |chosen - rejected|, in bins of equal size from the smallest
    margins to the largest: a calibrated model is right more often where it is more decided."""
    ordered = sorted(scores, key=lambda pair: abs(pair[0] - pair[1]))
    size = math.ceil(len(ordered) / MARGIN_BINS)
    curve = []
    for start in range(0, len(ordered), size):
        chunk = ordered[start : start + size]
        curve.append(
            {"margin_low": abs(chunk[0][0] - chunk[0][1]), "margin_high": abs(chunk[-1][0] - chunk[-1][1]),
             "pairs": len(chunk), "accuracy": _accuracy(chunk)}
        )
    return curve


# ---------------------------------------------------------------------------------------------- checkpoints


def benchmark_name(path: Path) -> str:
    """``helpful-base_test.jsonl.gz`` -> ``helpful-base_test``: the suffix of its metric names."""
    return path.name.split(".")[0]


def evaluate_checkpoint(
    scorer: RewardScorer, holdout: Sequence[RewardExample], benchmarks: Mapping[str, Sequence[PreferencePair]]
) -> dict[str, Any]:
    """Every metric of one checkpoint, scored exactly as the service would score it.

    ``holdout_*``: ordinal metrics on the held-out ratings at the checkpoint's levels, and
    ``holdout_<head>_roc_auc`` per signal head (``head_metrics``); per benchmark,
    ``pairwise_<name>`` (accuracy) and ``margin_curve_<name>``; ``canary_rewards``, which the scoring service
    compares with what the artifact it loads gives, so that it never serves a different model under this name.
    """
    levels = scorer.spec.levels
    rated = [example for example in holdout if example.level in levels]
    metrics: dict[str, Any] = {"canary_rewards": canary_rewards(scorer)}
    if rated:
        scores = scorer.score_texts([scorer.render(e.history, e.query, e.response) for e in rated])
        classes = torch.tensor([levels.index(example.level) for example in rated])
        found = ordinal_metrics(torch.tensor(scores.level_probabilities), classes, levels)
        metrics.update({f"holdout_{name}": value for name, value in found.items()})
    metrics.update(head_metrics(scorer, holdout))
    for name, pairs in benchmarks.items():
        scores = pair_scores(
            lambda texts: scorer.score_texts(texts).rewards, pairs, layout=scorer.spec.layout, batch_size=512
        )
        metrics[f"pairwise_{name}"] = _accuracy(scores)
        metrics[f"margin_curve_{name}"] = margin_curve(scores)
    return metrics


def head_metrics(scorer: RewardScorer, holdout: Sequence[RewardExample]) -> dict[str, float]:
    """ROC-AUC of each signal head's probability on the held-out examples that have its target, where both
    outcomes occur. Recorded with the version, not gated: the gate compares the reward every model has."""
    metrics = {}
    for head in scorer.spec.heads:
        known = [(example, target) for example in holdout if (target := head_target(example, head)) is not None]
        if len({target for _, target in known}) < 2:
            continue
        rows = scorer.score_texts([scorer.render(e.history, e.query, e.response) for e, _ in known]).heads
        metrics[f"holdout_{head}_roc_auc"] = float(roc_auc_score([t for _, t in known], [r[head] for r in rows]))
    return metrics
