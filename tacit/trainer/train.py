"""Fine-tune an ordinal reward model on labeled examples and save it as a standard checkpoint.

The loop is sized in optimizer steps, not epochs, so a retrain costs the same whether ten thousand or a
million labels have piled up. Batches are padded only to their own longest text (WildReward pads every
example to 4096 tokens; most chat turns are a small fraction of that).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from tacit.core.errors import TacitError
from tacit.core.examples import SPLITS, LabelScheme, RewardExample, Split, head_target, label_scheme
from tacit.core.extras import require
from tacit.core.heads import signal_heads
from tacit.core.settings import Precision
from tacit.model.hardware import autocast, default_device
from tacit.model.layouts import LAYOUTS, Layout, render
from tacit.model.ordinal import classification_layer
from tacit.model.scoring import ensure_padding
from tacit.trainer.model import (
    HEADS,
    Head,
    balanced_class_weights,
    init_thresholds,
    load_reward_model,
    ordinal_loss,
    save_reward_model,
    signal_head_loss,
)

MIN_EXAMPLES = 32  # below this a batch or two is all there is, and a holdout of it measures nothing
MAX_GRAD_NORM = 1.0
TRAINING_STATE = "training_state"  # <output dir>/training_state-<rank>.pt while a run is unfinished

BatchLoss = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]


class TooFewExamples(TacitError):
    """The feedback table does not hold enough usable labels to train on yet."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_length: int = 256
    holdout_fraction: float = 0.1
    split: Split = "user"
    gradient_accumulation_steps: int = 1  # optimizer steps see batch_size * this many examples
    class_weighting: bool = False  # weigh each class equally in the loss (see balanced_class_weights)
    soft_targets: bool = False  # learn the labeler's calibrated probabilities where stored, not the level
    save_every: int = 0  # steps between resumable training states; 0: none
    lora_rank: int = 0  # > 0: train LoRA adapters of this rank (and the head) instead of every weight
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30% slower
    label_scheme: str = "five"  # the quality benchmark: neutral items kept rank and calibrate better than dropped
    head: Head = "coral"
    heads: tuple[str, ...] = ()  # signal heads trained beside the ordinal one (tacit.core.heads)
    layout: Layout = "compact"
    seed: int = 0
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        label_scheme(self.label_scheme)
        if signal_heads(self.heads) != tuple(self.heads):
            raise ValueError(f"heads {self.heads!r}: name each signal head once, in the order "
                             f"{signal_heads(self.heads)!r}.")
        choices_of = (("head", self.head, HEADS), ("layout", self.layout, LAYOUTS), ("split", self.split, SPLITS))
        for name, value, choices in choices_of:
            if value not in choices:
                raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)}.")


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    output_dir: Path
    holdout: list[RewardExample]  # evaluated with the saved checkpoint, as it will be served


@dataclass(frozen=True)
class Replica:
    """This process's part in data-parallel training: replica ``rank`` of ``world`` trains on every
    world-th example, and ``prepare`` wraps its model so gradients are averaged across replicas (DDP under
    Ray Train). The default is the whole job in one process."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=default_device)
    prepare: Callable[[nn.Module], nn.Module] = lambda model: model


def split_examples(
    examples: Sequence[RewardExample], config: TrainConfig
) -> tuple[list[RewardExample], list[RewardExample]]:
    """(train, holdout) of the examples the label scheme keeps, and with signal heads of those with a
    target for one of them; the same on every call and replica."""
    scheme = label_scheme(config.label_scheme)
    rated = [example for example in examples if scheme.keeps(example)]
    _require_enough(rated, len(examples), scheme)
    usable = [example for example in examples if scheme.keeps(example) or _has_head_target(example, config)]
    return SPLITS[config.split](usable, config.holdout_fraction, config.seed)


def _has_head_target(example: RewardExample, config: TrainConfig) -> bool:
    return any(head_target(example, head) is not None for head in config.heads)


def train_reward_model(
    examples: Sequence[RewardExample],
    config: TrainConfig,
    base_model: Path,
    output_dir: Path,
    *,
    incremental: bool = False,
    replica: Replica = Replica(),
) -> TrainResult:
    """Split, fine-tune ``base_model`` for ``config.steps`` steps and save; the holdout is returned.

    ``incremental`` continues from a reward model trained before (the champion): its head is kept, not
    reset to the class prior, so the run refines what it learned instead of starting over. Only replica 0
    writes the checkpoint.
    """
    scheme = label_scheme(config.label_scheme)
    train, holdout = split_examples(examples, config)

    if incremental:
        _require_same_heads(base_model, config.heads)
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model, truncation_side="left")
    model = load_reward_model(base_model, scheme.num_classes, config.head, len(config.heads))
    ensure_padding(tokenizer, model)
    classes = [scheme.to_class(example.level) for example in train if scheme.keeps(example)]
    if not incremental:
        init_thresholds(model, classes, [_known_targets(train, head) for head in config.heads])
    trained = adapt(model, config)
    replicated = replica.prepare(trained.to(replica.device))

    weights = balanced_class_weights(classes, scheme.num_classes) if config.class_weighting else None
    loader = _loader(tokenizer, train[replica.rank :: replica.world], scheme, config, shuffle=True)
    state = output_dir / f"{TRAINING_STATE}-{replica.rank}.pt"
    losses = fit(replicated, loader, config, replica.device, ordinal_batch_loss(weights), state)
    window = losses[-max(1, len(losses) // 10) :]  # where the loss ended, smoothed over the last batches
    metrics = {
        "train_examples": len(train),
        "holdout_examples": len(holdout),
        "steps": config.steps,
        "train_loss": sum(window) / len(window),
    }
    if replica.rank == 0:
        save_reward_model(
            merged(trained), tokenizer, output_dir, levels=scheme.levels, layout=config.layout,
            max_length=config.max_length, heads=config.heads,
        )
    state.unlink(missing_ok=True)
    return TrainResult(metrics=metrics, output_dir=output_dir, holdout=holdout)


def _require_same_heads(champion: Path, heads: Sequence[str]) -> None:
    """An incremental run keeps the champion's classification layer, so it must have the same outputs:
    transformers would otherwise fail on the layer's shape, naming neither model's heads."""
    trained = tuple((getattr(AutoConfig.from_pretrained(champion), "tacit", None) or {}).get("heads", ()))
    if trained != tuple(heads):
        raise TacitError(
            f"The model to continue from has the signal heads {list(trained)}, this run asks for {list(heads)}; "
            "train with the same TACIT_TRAIN_HEADS, or from the base model (without --incremental).")


def _known_targets(examples: Sequence[RewardExample], head: str) -> list[float]:
    return [target for target in (head_target(example, head) for example in examples) if target is not None]


def adapt(model: PreTrainedModel, config: TrainConfig) -> nn.Module:
    """The model as it is trained: with LoRA adapters on every linear layer of the backbone (the head is
    trained in full) when ``config.lora_rank`` is set, and with gradient checkpointing when asked.

    LoRA is how a 1-8B decoder fits one GPU with its optimizer state; the checkpoint is saved merged, so
    serving never needs peft.
    """
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not config.lora_rank:
        return model
    require("decoder", "peft")
    from peft import LoraConfig, TaskType, get_peft_model

    head, _ = classification_layer(model)
    adapters = LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_rank, lora_alpha=2 * config.lora_rank,
                          lora_dropout=0.05, target_modules="all-linear", modules_to_save=[head.split(".")[-1]])
    return get_peft_model(model, adapters)


def merged(model: nn.Module) -> PreTrainedModel:
    """A LoRA-trained model with its adapters folded into the weights; any other model as it is."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


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
        {**{key: values[i] for key, values in encoded.items()}, **_targets(example, scheme, config)}
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


def _targets(example: RewardExample, scheme: LabelScheme, config: TrainConfig) -> dict[str, Any]:
    """One example's training targets. With signal heads, also a 0/1 mask per head and one for the ordinal
    head, so that each loss leaves out the examples without its target; without, exactly the ordinal ones."""
    rated = scheme.keeps(example)
    unrated = [0.0] * (scheme.num_classes - 1)
    targets = {"labels": scheme.to_class(example.level) if rated else 0,
               "targets": scheme.above(example, config.soft_targets) if rated else unrated}
    if not config.heads:
        return targets
    known = [head_target(example, head) for head in config.heads]
    return {**targets, "rated": float(rated), "head_targets": [target or 0.0 for target in known],
            "head_mask": [float(target is not None) for target in known]}


def ordinal_batch_loss(class_weights: torch.Tensor | None = None) -> BatchLoss:
    """The reward model's loss on a batch of rated texts (their classes in ``labels``, their per-threshold
    targets in ``targets``), plus the signal heads' losses where the batch carries their targets; the
    thresholds are the first logits, the signal heads the rest."""

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        classes, targets, rated = batch.pop("labels"), batch.pop("targets"), batch.pop("rated", None)
        heads = (batch.pop("head_targets"), batch.pop("head_mask")) if "head_targets" in batch else None
        logits = model(**batch).logits
        thresholds = targets.shape[-1]
        total = ordinal_loss(logits[:, :thresholds], classes, class_weights, targets=targets, mask=rated)
        return total if heads is None else total + signal_head_loss(logits[:, thresholds:], *heads)

    return loss


def fit(
    model: nn.Module,
    loader: DataLoader,
    config: TrainConfig,
    device: torch.device,
    batch_loss: BatchLoss,
    state_path: Path,
) -> list[float]:
    """AdamW with linear warm-up and decay, cycling through the data until ``config.steps`` steps.

    ``batch_loss`` turns one batch (already on ``device``) into the loss to minimise: the ordinal loss of
    rated texts here, a pairwise loss for the Bradley-Terry reference of the quality benchmark.

    With ``config.save_every``, the training state is saved every that many steps to ``state_path``; a
    run started again on the same output directory and data continues from it exactly.
    """
    optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    warmup = math.ceil(config.warmup_ratio * config.steps)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, config.steps)
    accumulate = config.gradient_accumulation_steps
    batches = chain.from_iterable(repeat(loader))
    steps = (list(islice(batches, accumulate)) for _ in range(config.steps))
    losses = _resume(state_path, model, optimizer, schedule, steps)
    model.train()
    # Where the bar cannot redraw in place (a Ray worker's log, CI) a line per step would flood the output.
    interval = 0.1 if sys.stderr.isatty() else 30.0
    progress = tqdm(steps, initial=len(losses), total=config.steps, desc="training", unit="step",
                    mininterval=interval)
    for micro_batches in progress:
        loss = sum(_backward(model, batch, config, device, accumulate, batch_loss) for batch in micro_batches)
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss)
        progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if config.save_every and len(losses) % config.save_every == 0 and len(losses) < config.steps:
            _save_state(state_path, model, optimizer, schedule, losses)
    return losses


def _save_state(path: Path, model: nn.Module, optimizer, schedule, losses: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "losses": losses, "rng": torch.get_rng_state()}
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # a crash while saving leaves the previous state intact


def _resume(path: Path, model: nn.Module, optimizer, schedule, steps: Iterator[list]) -> list[float]:
    """Restore a saved state and skip the steps it already took; returns their losses ([] if none).

    The skipped batches are drawn (not trained on) so that the data order and the random state continue
    exactly where the interrupted run stopped.
    """
    if not path.exists():
        return []
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    for _ in islice(steps, len(state["losses"])):
        pass
    torch.set_rng_state(state["rng"])
    return state["losses"]


def _backward(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    config: TrainConfig,
    device: torch.device,
    parts: int,
    batch_loss: BatchLoss,
) -> float:
    """Gradients of one micro-batch, scaled so that ``parts`` of them add up to one batch's mean."""
    with autocast(device, config.precision):
        loss = batch_loss(model, batch.to(device)) / parts
    loss.backward()
    return loss.item()


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: decaying biases and LayerNorm gains pulls them towards zero for no benefit."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]
