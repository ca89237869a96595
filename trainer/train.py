"""Fine-tune an ordinal reward model on labeled examples and save it as a standard checkpoint.

The loop is sized in optimizer steps, not epochs, so a retrain costs the same whether ten thousand or a
million labels have piled up. Batches are padded only to their own longest text (WildReward pads every
example to 4096 tokens; most chat turns are a small fraction of that).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, islice, repeat
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from tacit.errors import TacitError
from tacit.hardware import autocast, default_device
from tacit.layouts import LAYOUTS, Layout, render
from tacit.settings import Precision
from trainer.dataset import LabelScheme, RewardExample, label_scheme, split_by_user
from trainer.evaluate import ordinal_metrics
from trainer.model import (
    HEADS,
    Head,
    init_thresholds,
    load_reward_model,
    ordinal_loss,
    save_reward_model,
)

MIN_EXAMPLES = 32  # below this a batch or two is all there is, and a holdout of it measures nothing
MAX_GRAD_NORM = 1.0


class TooFewExamples(TacitError):
    """The feedback table does not hold enough usable labels to train on yet."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_length: int = 256
    holdout_fraction: float = 0.1
    label_scheme: str = "wildfb"
    head: Head = "coral"
    layout: Layout = "compact"
    seed: int = 0
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        label_scheme(self.label_scheme)
        for name, value, choices in (("head", self.head, HEADS), ("layout", self.layout, LAYOUTS)):
            if value not in choices:
                raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)}.")


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    output_dir: Path


def train_reward_model(
    examples: Sequence[RewardExample], config: TrainConfig, base_model: Path, output_dir: Path
) -> TrainResult:
    """Split by user, fine-tune ``base_model`` for ``config.steps`` steps, evaluate on the holdout, save."""
    scheme = label_scheme(config.label_scheme)
    usable = [example for example in examples if scheme.keeps(example)]
    _require_enough(usable, len(examples), scheme)
    train, holdout = split_by_user(usable, config.holdout_fraction, config.seed)

    set_seed(config.seed)
    device = default_device()
    tokenizer = AutoTokenizer.from_pretrained(base_model, truncation_side="left")
    model = load_reward_model(base_model, scheme.num_classes, config.head)
    init_thresholds(model, [scheme.to_class(example.level) for example in train])
    model.to(device)

    losses = _fit(model, _loader(tokenizer, train, scheme, config, shuffle=True), config, device)
    window = losses[-max(1, len(losses) // 10) :]  # where the loss ended, smoothed over the last batches
    metrics = {
        "train_examples": len(train),
        "holdout_examples": len(holdout),
        "steps": config.steps,
        "train_loss": sum(window) / len(window),
    }
    if holdout:
        holdout_loader = _loader(tokenizer, holdout, scheme, config, shuffle=False)
        found = _evaluate(model, holdout_loader, scheme, device, config.precision)
        metrics.update({f"holdout_{name}": value for name, value in found.items()})
    save_reward_model(
        model, tokenizer, output_dir, levels=scheme.levels, layout=config.layout, max_length=config.max_length
    )
    return TrainResult(metrics=metrics, output_dir=output_dir)


def _require_enough(usable: Sequence[RewardExample], total: int, scheme: LabelScheme) -> None:
    advice = "Replay more chat logs (or wait for more traffic) and train again once they are labeled."
    if len(usable) < MIN_EXAMPLES:
        raise TooFewExamples(
            f"Only {len(usable)} of {total} labeled examples have a level the {scheme.name!r} label scheme "
            f"trains on {list(scheme.levels)}; training needs at least {MIN_EXAMPLES}. {advice}"
        )
    levels = {example.level for example in usable}
    if len(levels) < 2:
        raise TooFewExamples(
            f"All {len(usable)} usable examples are level {levels.pop()}; a reward model needs examples "
            f"at two levels at least. {advice}"
        )


def _loader(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[RewardExample],
    scheme: LabelScheme,
    config: TrainConfig,
    *,
    shuffle: bool,
) -> DataLoader:
    """Tokenized once up front (fast tokenizers batch well); padded per batch by the collator.

    Training batches are length-grouped (random, but each batch holds texts of similar length), so padding
    costs little: on chat logs a fifth of the texts reach max_length, and a plain shuffle pads nearly every
    batch to it.
    """
    texts = [render(e.history, e.query, e.response, config.layout) for e in examples]
    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    items = [
        {**{key: values[i] for key, values in encoded.items()}, "labels": scheme.to_class(example.level)}
        for i, example in enumerate(examples)
    ]
    sampler = None
    if shuffle:
        lengths = [len(item["input_ids"]) for item in items]
        generator = torch.Generator().manual_seed(config.seed)
        sampler = LengthGroupedSampler(config.batch_size, lengths=lengths, generator=generator)
    return DataLoader(
        items, batch_size=config.batch_size, sampler=sampler, collate_fn=DataCollatorWithPadding(tokenizer)
    )


def _fit(
    model: PreTrainedModel, loader: DataLoader, config: TrainConfig, device: torch.device
) -> list[float]:
    """AdamW with linear warm-up and decay, cycling through the data until ``config.steps`` batches."""
    optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    warmup = math.ceil(config.warmup_ratio * config.steps)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, config.steps)
    batches = islice(chain.from_iterable(repeat(loader)), config.steps)
    losses = []
    model.train()
    # Where the bar cannot redraw in place (a Ray worker's log, CI) a line per step would flood the output.
    interval = 0.1 if sys.stderr.isatty() else 30.0
    progress = tqdm(batches, total=config.steps, desc="training", unit="step", mininterval=interval)
    for batch in progress:
        classes = batch.pop("labels").to(device)
        with autocast(device, config.precision):
            logits = model(**batch.to(device)).logits
        loss = ordinal_loss(logits, classes)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return losses


def _parameter_groups(model: PreTrainedModel, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: decaying biases and LayerNorm gains pulls them towards zero for no benefit."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]


@torch.inference_mode()
def _evaluate(
    model: PreTrainedModel, loader: DataLoader, scheme: LabelScheme, device: torch.device, precision: Precision
) -> dict[str, float]:
    model.eval()
    logits, classes = [], []
    for batch in loader:
        classes.append(batch.pop("labels"))
        with autocast(device, precision):
            logits.append(model(**batch.to(device)).logits.float().cpu())
    return ordinal_metrics(torch.cat(logits), torch.cat(classes), scheme.levels)
