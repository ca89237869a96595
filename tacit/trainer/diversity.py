"""User diversity: does a reward model trained on many users' feedback beat one trained on few users'?

WildReward found that, at the same number of examples, data from more distinct users gives a better model.
This reproduces the experiment on the examples in the store: one evaluation set of users that no model
trains on, training subsets of equal size drawn from different numbers of the other users (few users with
many examples each, up to many users with few each), every subset trained with the trainer's own code and
settings and evaluated with its own metrics. Each size is repeated over seeds (a different draw and
initialisation), because on small data the spread between seeds is as large as the effect.
"""

from __future__ import annotations

import csv
import json
import math
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from tacit.core.errors import TacitError
from tacit.core.examples import RewardExample, label_scheme, split_by_user, user_key
from tacit.core.extras import require
from tacit.core.settings import TacitSettings
from tacit.model.scoring import RewardScorer
from tacit.trainer.evaluate import evaluate_checkpoint
from tacit.trainer.job import train_config
from tacit.trainer.train import MIN_EXAMPLES, TooFewExamples, TrainConfig, train_reward_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS = ("accuracy", "mae", "qwk", "ece", "roc_auc")  # as tacit.trainer.evaluate.ordinal_metrics names them
T = TypeVar("T")


class TooFewForAnalysis(TacitError):
    """The store cannot supply the requested subsets; the message says which option to lower."""


# ------------------------------------------------------------------------------------ examples per user


@dataclass(frozen=True)
class UserDistribution:
    counts: tuple[int, ...]  # examples of each user, most first

    @classmethod
    def of(cls, examples: Sequence[RewardExample]) -> UserDistribution:
        return cls(tuple(sorted(Counter(map(user_key, examples)).values(), reverse=True)))

    @property
    def users(self) -> int:
        return len(self.counts)

    @property
    def examples(self) -> int:
        return sum(self.counts)

    def top_share(self, fraction: float) -> float:
        """Share of the examples that the top ``fraction`` of users (at least one) hold."""
        top = max(1, round(fraction * self.users))
        return sum(self.counts[:top]) / max(1, self.examples)

    def histogram(self) -> list[tuple[str, int]]:
        """Users per bucket of examples per user: 1, 2-3, 4-7, ... (powers of two)."""
        buckets = Counter(count.bit_length() - 1 for count in self.counts)
        return [(_bucket_label(power), buckets[power]) for power in range(max(buckets, default=-1) + 1)]


def _bucket_label(power: int) -> str:
    low, high = 2**power, 2 ** (power + 1) - 1
    return str(low) if low == high else f"{low}-{high}"


# ------------------------------------------------------------------------------------- drawing subsets


def fewest_users(sizes: Sequence[int], subset_size: int) -> int:
    """The fewest users whose examples add up to ``subset_size`` (their largest users first)."""
    total = 0
    for users, size in enumerate(sorted(sizes, reverse=True), start=1):
        total += size
        if total >= subset_size:
            return users
    raise TooFewForAnalysis(
        f"The training users hold {total} examples in all, fewer than --subset-size {subset_size}; "
        f"lower --subset-size to at most {total}."
    )


def default_user_counts(sizes: Sequence[int], subset_size: int) -> tuple[int, ...]:
    """From the fewest users that can fill a subset to one example per user, in steps of four."""
    most = min(subset_size, len(sizes))
    counts = [fewest_users(sizes, subset_size)]
    while counts[-1] * 4 < most:
        counts.append(counts[-1] * 4)
    return tuple(dict.fromkeys([*counts, most]))


def draw_subset(groups: Mapping[str, Sequence[T]], users: int, size: int, seed: int) -> list[T]:
    """``size`` items from exactly ``users`` of the groups, spread as evenly as their sizes allow.

    Users are visited in a seeded random order and each is taken unless taking it would leave the subset
    impossible to fill (too few items among the users still open); the same seed gives the same subset.
    """
    _require_drawable({key: len(items) for key, items in groups.items()}, users, size)
    rng = random.Random(f"{seed}:{users}:{size}")
    order = sorted(groups)
    rng.shuffle(order)
    open_sizes = sorted(len(groups[key]) for key in order)  # of the users not visited yet
    chosen: list[str] = []
    held = 0
    for key in order:
        open_sizes.remove(len(groups[key]))
        slots = users - len(chosen) - 1
        if held + len(groups[key]) + sum(open_sizes[len(open_sizes) - slots :]) >= size:
            chosen.append(key)
            held += len(groups[key])
            if len(chosen) == users:
                break
    subset: list[T] = []
    for key, share in _shares({key: len(groups[key]) for key in chosen}, size).items():
        subset += rng.sample(list(groups[key]), share)
    return subset


def _shares(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """``total`` split over the users as evenly as possible, none above its size and each at least one.

    Smallest users first: one that cannot take an equal share takes all it has, the rest share the remainder.
    """
    shares = {}
    left = total
    for position, key in enumerate(sorted(sizes, key=sizes.get)):
        shares[key] = min(sizes[key], left // (len(sizes) - position))
        left -= shares[key]
    return shares


def _require_drawable(sizes: Mapping[str, int], users: int, size: int) -> None:
    if users > len(sizes):
        raise TooFewForAnalysis(
            f"Only {len(sizes)} users are outside the evaluation set; lower the user counts (--user-counts) "
            f"to at most {len(sizes)}."
        )
    if users > size:
        raise TooFewForAnalysis(
            f"{users} users cannot each give an example to a subset of {size}; lower the user counts to at most "
            f"--subset-size, or raise --subset-size."
        )
    most = sum(sorted(sizes.values(), reverse=True)[:users])
    if most < size:
        raise TooFewForAnalysis(
            f"Subsets from {users} users hold at most {most} examples, fewer than --subset-size {size}: lower "
            f"--subset-size to {most}, or leave out user counts below {fewest_users(list(sizes.values()), size)}."
        )


# ------------------------------------------------------------------------------------------- experiment


@dataclass(frozen=True)
class DiversityConfig:
    subset_size: int = 128
    user_counts: tuple[int, ...] = ()  # empty: default_user_counts
    seeds: int = 3
    steps: int = 20


@dataclass(frozen=True)
class Run:
    users: int
    seed: int
    metrics: dict[str, float]  # METRICS on the evaluation set; NaN where it lacks what a metric needs


@dataclass(frozen=True)
class Experiment:
    config: DiversityConfig
    eval_examples: int
    eval_users: int
    training_users: int  # users subsets are drawn from
    runs: list[Run]


@dataclass(frozen=True)
class Row:
    """One user count, summarised over its seeds."""

    users: int
    examples: int
    runs: int
    mean: dict[str, float]
    std: dict[str, float]  # sample standard deviation; NaN with a single seed


def user_diversity(
    examples: Sequence[RewardExample],
    settings: TacitSettings,
    config: DiversityConfig,
    *,
    on_run: Callable[[Run], None] = lambda run: None,
) -> Experiment:
    """Train and evaluate one model per user count and seed, in this process.

    The evaluation set is the trainer's own holdout (``TACIT_HOLDOUT_FRACTION`` of the examples, by user,
    ``TACIT_SEED``), so it is the same for every model. Every subset is drawn before any training starts:
    a size the store cannot supply fails at once, not after minutes of training.
    """
    if config.subset_size < MIN_EXAMPLES:
        raise TooFewForAnalysis(f"--subset-size must be at least {MIN_EXAMPLES}, the fewest the trainer trains on.")
    training = train_config(settings, config.steps, holdout_fraction=0.0)
    scheme = label_scheme(training.label_scheme)
    pool, evaluation = split_by_user([e for e in examples if scheme.keeps(e)], settings.holdout_fraction, settings.seed)
    if not evaluation:
        raise TooFewForAnalysis("The evaluation set is empty: set TACIT_HOLDOUT_FRACTION above 0, or add users.")
    groups: dict[str, list[RewardExample]] = {}
    for example in pool:
        groups.setdefault(user_key(example), []).append(example)
    counts = config.user_counts or default_user_counts([len(items) for items in groups.values()], config.subset_size)
    subsets = {(users, seed): draw_subset(groups, users, config.subset_size, seed)
               for users in counts for seed in range(config.seeds)}
    runs = []
    for (users, seed), subset in subsets.items():
        run = Run(users, seed, _train_and_measure(subset, evaluation, settings, replace(training, seed=seed)))
        on_run(run)
        runs.append(run)
    return Experiment(replace(config, user_counts=counts), len(evaluation), UserDistribution.of(evaluation).users,
                      len(groups), runs)


def _train_and_measure(
    subset: Sequence[RewardExample], evaluation: Sequence[RewardExample], settings: TacitSettings, config: TrainConfig
) -> dict[str, float]:
    """The trainer's fine-tune and evaluation, with the checkpoint in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="tacit-analysis-") as directory:
        try:
            result = train_reward_model(subset, config, settings.resolved_base_model(), Path(directory))
        except TooFewExamples as exc:
            raise TooFewForAnalysis(
                f"A subset (seed {config.seed}) cannot be trained on: {exc} With few users a subset may hold a "
                f"single level; leave out the smallest user counts (--user-counts) or lower --subset-size."
            ) from exc
        metrics = evaluate_checkpoint(RewardScorer.load(result.output_dir, settings), evaluation, {})
    return {name: float(metrics.get(f"holdout_{name}", math.nan)) for name in METRICS}


def summarise(experiment: Experiment) -> list[Row]:
    rows = []
    for users in experiment.config.user_counts:
        runs = [run for run in experiment.runs if run.users == users]
        values = {name: [run.metrics[name] for run in runs] for name in METRICS}
        rows.append(Row(
            users, experiment.config.subset_size, len(runs),
            mean={name: float(np.mean(found)) for name, found in values.items()},
            std={name: float(np.std(found, ddof=1)) if len(found) > 1 else math.nan for name, found in values.items()},
        ))
    return rows


# ---------------------------------------------------------------------------------------------- outputs


def write_outputs(experiment: Experiment, out: Path) -> list[Path]:
    """``user_diversity.csv`` (a row per user count), ``.json`` (also every run) and ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(experiment)
    paths = [out / f"user_diversity.{suffix}" for suffix in ("csv", "json", "png")]
    with paths[0].open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["users", "examples", "runs", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))])
        for row in rows:
            writer.writerow([row.users, row.examples, row.runs,
                             *(value for m in METRICS for value in (row.mean[m], row.std[m]))])
    report = {**asdict(experiment), "summary": [asdict(row) for row in rows]}
    paths[1].write_text(json.dumps(_without_nan(report), indent=2))
    _plot(experiment, rows).savefig(paths[2], dpi=120, bbox_inches="tight")
    return paths


def _without_nan(value):
    """JSON has no NaN: a metric that could not be measured is null."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _plot(experiment: Experiment, rows: Sequence[Row]) -> Figure:
    """One panel per metric against the number of users (log scale), mean with a bar of one std."""
    require("analysis", "matplotlib")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * len(METRICS), 3.4), layout="constrained")
    users = [row.users for row in rows]
    for axes, name in zip(figure.subplots(1, len(METRICS)), METRICS, strict=True):
        axes.errorbar(users, [row.mean[name] for row in rows], yerr=[row.std[name] for row in rows],
                      marker="o", capsize=3)
        axes.set_xscale("log", base=2)
        axes.set(title=name, xlabel="distinct users")
    figure.suptitle(f"{experiment.config.subset_size} training examples per model, {experiment.config.steps} steps; "
                    f"evaluated on {experiment.eval_examples} examples of {experiment.eval_users} other users")
    return figure
