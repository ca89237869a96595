"""The quality benchmark: does a change to training make a better reward model?

Reward models are trained on N labeled follow-ups (a learning curve) with the trainer's own code, and scored
on held-out preference pairs that share no conversation with the training data. Two references are measured
on the same pairs in the same run: "the longer reply wins", which a reward model must beat to be worth
anything, and a Bradley-Terry model of the same backbone trained on as many explicit HH-RLHF preference pairs
with the same steps and texts per step (WildReward's claim is that implicit feedback matches it at equal
data). Every model is trained over several seeds, because at small data the spread between seeds is as large
as most effects.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, PreTrainedTokenizerBase, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler

from tacit.core.domain import REFINED, Role
from tacit.core.errors import TacitError
from tacit.core.examples import RewardExample
from tacit.core.settings import TacitSettings
from tacit.labels.base import Labeler
from tacit.labels.datasets import log_candidates
from tacit.model.layouts import render
from tacit.model.scoring import RewardScorer
from tacit.refine.pipeline import with_refinements
from tacit.trainer.evaluate import (
    PreferencePair,
    benchmark_name,
    load_pairs,
    ordinal_metrics,
    pairwise_accuracy,
)
from tacit.trainer.model import load_reward_model, save_reward_model
from tacit.trainer.train import TrainConfig, fit, train_reward_model

LABEL_BATCH = 1000
LONGER_WINS = "longer wins"
BRADLEY_TERRY = "bradley-terry"


@dataclass(frozen=True)
class Variant:
    """One training recipe: a name for the table and the ``TrainConfig`` fields it changes."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """One trained model (or reference) on every held-out set."""

    model: str
    size: int  # training examples (or pairs) it saw; a user split makes it vary a little between seeds
    seed: int
    accuracy: dict[str, float]  # pairwise accuracy per held-out set
    seconds: float = 0.0
    holdout_ece: float | None = None
    planned: int | None = None  # the size asked for (None: all the examples): what seeds are grouped by


# ---------------------------------------------------------------------------------------------- data


def examples_from_log(path: Path, labeler: Labeler, format_name: str | None = None) -> list[RewardExample]:
    """The log's follow-ups labeled and refined as the worker would store them; filtered items left out.

    Each conversation stands for its own user unless the log names one, so the holdout split keeps whole
    conversations apart.
    """
    examples: list[RewardExample] = []
    candidates = iter(log_candidates(path, format_name))
    while batch := list(islice(candidates, LABEL_BATCH)):
        rated = with_refinements(batch, labeler.label(batch))[len(batch) :]
        examples += [
            RewardExample(
                tenant=c.tenant, conversation_id=c.conversation_id, user_id=c.user_id or c.conversation_id,
                history=c.history, query=c.query.content if c.query else "", response=c.response.content,
                level=int(label.level), probabilities=label.probabilities,
            )
            for c, label in rated
            if label.stage == REFINED
        ]
    return examples


def user_texts(examples: Iterable[RewardExample]) -> set[str]:
    """Every user message in the examples (queries and history), normalised for comparison."""
    texts = set()
    for example in examples:
        texts.add(_normal(example.query))
        texts.update(_normal(m.content) for m in example.history if m.role is Role.USER)
    texts.discard("")
    return texts


def unseen(pairs: Sequence[PreferencePair], seen_user_texts: set[str]) -> list[PreferencePair]:
    """The pairs none of whose user messages occurs in the training data: HH-RLHF's chosen transcripts are
    also chat logs (the bundled sample holds some), and a model must not be scored on a conversation it
    trained on."""
    return [
        pair for pair in pairs
        if _normal(pair.query) not in seen_user_texts
        and not any(_normal(m.content) in seen_user_texts for m in pair.history if m.role is Role.USER)
    ]


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def heldout_sets(
    paths: Sequence[Path], training: Sequence[RewardExample], max_pairs: int, seed: int = 0
) -> tuple[dict[str, list[PreferencePair]], list[PreferencePair]]:
    """(held-out sets by name, the remaining pairs): each set is at most ``max_pairs`` pairs unseen in
    ``training``, drawn at random; what is left of the sets (unseen too) is where the Bradley-Terry reference
    draws its training pairs from, so it never trains on a pair it is scored on."""
    seen = user_texts(training)
    rng = random.Random(seed)
    sets, rest = {}, []
    for path in paths:
        pairs = unseen(load_pairs(path), seen)
        rng.shuffle(pairs)
        if not pairs:
            raise TacitError(f"{path}: every pair shares a conversation with the training data.")
        sets[benchmark_name(path)] = pairs[:max_pairs]
        rest += pairs[max_pairs:]
    return sets, rest


# -------------------------------------------------------------------------------------------- references


def longer_wins(pairs: Sequence[PreferencePair]) -> float:
    """Share of pairs whose chosen reply is the longer one (in characters), ties counting half."""
    wins = sum((len(p.chosen) > len(p.rejected)) + 0.5 * (len(p.chosen) == len(p.rejected)) for p in pairs)
    return wins / len(pairs)


def pairwise_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Bradley-Terry: -log sigmoid(r_chosen - r_rejected); the batch holds the chosen texts, then the
    rejected ones in the same order."""
    rewards = model(**batch).logits[:, 0].float()  # a bf16 difference of two close rewards is mostly rounding
    half = len(rewards) // 2
    return -F.logsigmoid(rewards[:half] - rewards[half:]).mean()


def train_bradley_terry(
    pairs: Sequence[PreferencePair], config: TrainConfig, base_model: Path, output_dir: Path
) -> Path:
    """A one-logit model of ``base_model`` trained on ``pairs`` with the pairwise loss, as many steps and
    texts per step as ``config`` (half as many pairs as examples per batch); saved as a two-level reward
    model, whose reward is monotone in the logit, so it is scored exactly as the ordinal models are."""
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model, truncation_side="left")
    model = load_reward_model(base_model, num_classes=2, head="independent")
    device = next(model.parameters()).device
    loader = _pair_loader(tokenizer, pairs, config)
    with tempfile.TemporaryDirectory() as state:
        fit(model, loader, config, device, pairwise_loss, Path(state) / "state.pt")
    save_reward_model(model, tokenizer, output_dir, levels=(1, 5), layout=config.layout, max_length=config.max_length)
    return output_dir


def _pair_loader(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], config: TrainConfig) -> DataLoader:
    def encode(replies: Callable[[PreferencePair], str]) -> list[dict[str, list[int]]]:
        texts = [render(p.history, p.query, replies(p), config.layout) for p in pairs]
        encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
        return [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]

    items = list(zip(encode(lambda p: p.chosen), encode(lambda p: p.rejected)))

    def collate(batch: list[tuple[dict, dict]]) -> dict[str, torch.Tensor]:
        return tokenizer.pad([c for c, _ in batch] + [r for _, r in batch], return_tensors="pt")

    lengths = [max(len(c["input_ids"]), len(r["input_ids"])) for c, r in items]
    sampler = LengthGroupedSampler(max(1, config.batch_size // 2), lengths=lengths,
                                   generator=torch.Generator().manual_seed(config.seed))
    return DataLoader(items, batch_size=max(1, config.batch_size // 2), sampler=sampler, collate_fn=collate)


# ------------------------------------------------------------------------------------------------- runs


def score_checkpoint(
    checkpoint: Path, settings: TacitSettings, sets: Mapping[str, Sequence[PreferencePair]],
    holdout: Sequence[RewardExample] = (),
) -> tuple[dict[str, float], float | None]:
    """Pairwise accuracy per set, and the ECE of the levels on the rated ``holdout`` (None without one).

    Scored in float32: the ranking the model learned, whatever precision a service later runs it in.
    """
    scorer = RewardScorer.load(checkpoint, settings.model_copy(update={"precision": "float32"}))
    accuracy = {
        name: pairwise_accuracy(lambda texts: scorer.score_texts(texts).rewards, pairs,
                                layout=scorer.spec.layout, batch_size=512)
        for name, pairs in sets.items()
    }
    levels = scorer.spec.levels
    rated = [e for e in holdout if e.level in levels]
    if not rated:
        return accuracy, None
    scores = scorer.score_texts([scorer.render(e.history, e.query, e.response) for e in rated])
    classes = torch.tensor([levels.index(e.level) for e in rated])
    return accuracy, ordinal_metrics(torch.tensor(scores.level_probabilities), classes, levels)["ece"]


def subsample(examples: Sequence[RewardExample], size: int | None, seed: int) -> list[RewardExample]:
    """``size`` examples drawn at random (all of them when there are fewer, or ``size`` is None)."""
    if size is None or size >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), size)


def measure_variant(
    variant: Variant, examples: Sequence[RewardExample], size: int | None, seed: int, base: TrainConfig,
    base_model: Path, settings: TacitSettings, sets: Mapping[str, Sequence[PreferencePair]],
) -> Measurement:
    """Train one model of the variant on ``size`` examples and score it on every held-out set."""
    config = replace(base, seed=seed, **variant.overrides)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        result = train_reward_model(subsample(examples, size, seed), config, base_model, Path(out))
        seconds = time.monotonic() - started
        accuracy, ece = score_checkpoint(Path(out), settings, sets, result.holdout)
    return Measurement(variant.name, int(result.metrics["train_examples"]), seed, accuracy, seconds, ece,
                       planned=size)


def measure_bradley_terry(
    pool: Sequence[PreferencePair], size: int, seed: int, base: TrainConfig, base_model: Path,
    settings: TacitSettings, sets: Mapping[str, Sequence[PreferencePair]],
) -> Measurement:
    pairs = random.Random(seed).sample(list(pool), min(size, len(pool)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        train_bradley_terry(pairs, replace(base, seed=seed), base_model, Path(out))
        seconds = time.monotonic() - started
        accuracy, _ = score_checkpoint(Path(out), settings, sets)
    return Measurement(BRADLEY_TERRY, len(pairs), seed, accuracy, seconds, planned=size)


@dataclass(frozen=True)
class Plan:
    """What one benchmark run trains: every variant at every size (None: all examples) and seed, and the
    Bradley-Terry reference at the sizes the first variant reached."""

    variants: tuple[Variant, ...]
    sizes: tuple[int | None, ...]
    seeds: tuple[int, ...]
    bradley_terry: bool = True

    @property
    def models(self) -> int:
        return (len(self.variants) + self.bradley_terry) * len(self.sizes) * len(self.seeds)


def run_quality(
    plan: Plan, examples: Sequence[RewardExample], sets: Mapping[str, Sequence[PreferencePair]],
    pool: Sequence[PreferencePair], base: TrainConfig, base_model: Path, settings: TacitSettings,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
) -> list[Measurement]:
    """Every model of the plan, measured; ``on_measurement`` hears of each as it is done (progress, files)."""
    measurements = [Measurement(LONGER_WINS, 0, 0, {name: longer_wins(pairs) for name, pairs in sets.items()})]
    on_measurement(measurements[0])
    reached: list[int] = []
    for variant in plan.variants:
        for size in plan.sizes:
            for seed in plan.seeds:
                found = measure_variant(variant, examples, size, seed, base, base_model, settings, sets)
                measurements.append(found)
                on_measurement(found)
                if variant == plan.variants[0] and seed == plan.seeds[0]:
                    reached.append(found.size)
    for size in reached if plan.bradley_terry else ():
        for seed in plan.seeds:
            found = measure_bradley_terry(pool, size, seed, base, base_model, settings, sets)
            measurements.append(found)
            on_measurement(found)
    return measurements


# ---------------------------------------------------------------------------------------------- summary


def summary_rows(measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """One row per model and planned size: mean and standard deviation over seeds per held-out set and of
    their mean; ``examples`` is the mean number each seed's model saw."""
    groups: dict[tuple[str, int | None], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.model, m.planned), []).append(m)
    rows = []
    for (model, _), group in groups.items():
        row: dict[str, Any] = {"model": model, "examples": round(statistics.fmean(m.size for m in group)),
                               "seeds": len(group)}
        for name in group[0].accuracy:
            row[name] = _spread([m.accuracy[name] for m in group])
        row["mean"] = _spread([statistics.fmean(m.accuracy.values()) for m in group])
        eces = [m.holdout_ece for m in group if m.holdout_ece is not None]
        row["holdout_ece"] = _spread(eces) if eces else None
        row["train_seconds"] = statistics.fmean(m.seconds for m in group)
        rows.append(row)
    return rows


def _spread(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
