"""The ordinal reward model: any sequence-classification backbone with K-1 threshold logits.

Logit k scores P(class > k). Two heads are offered:

- ``coral`` (Cao et al., 2020): one weight vector shared by every threshold plus K-1 biases. An input
  shifts every threshold logit by the same amount, so the thresholds keep one order for all inputs; with
  the biases in order (they start at the class prior, and the loss optimum keeps them so) P(class > k)
  never increases with k: the model cannot call a reply "above 2 but not above 1".
- ``independent`` (WildReward): K-1 unrelated logits, each its own binary classifier.

Either way the checkpoint is a standard K-1-output classification model: ``save_reward_model`` writes the
shared CORAL vector into every row of a plain Linear, so any transformers consumer scores it unchanged.

Signal heads (:mod:`tacit.core.heads`) are further rows of the same Linear, after the K-1 thresholds: one
free weight vector and bias per head, on the same backbone features. ``config.tacit["heads"]`` names them;
a checkpoint without that key has the thresholds alone, as every checkpoint before signal heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from tacit.model.ordinal import classification_layer

Head = Literal["coral", "independent"]
HEADS: tuple[str, ...] = ("coral", "independent")


class SharedRow(nn.Module):
    """Parametrises a (K-1 + signal heads, hidden) weight by one row used for every threshold (the CORAL
    constraint), followed by one free row per signal head."""

    def __init__(self, thresholds: int) -> None:
        super().__init__()
        self.thresholds = thresholds

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([rows[:1].expand(self.thresholds, -1), rows[1:]])

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        # A fresh head has random rows (any one will do); a saved CORAL head has identical threshold rows.
        return torch.cat([weight[:1], weight[self.thresholds :]]).clone()


def load_reward_model(
    base_model: Path, num_classes: int, head: Head = "coral", signal_heads: int = 0
) -> PreTrainedModel:
    """A backbone from a local checkpoint with a fresh K-1-threshold head of the given kind, and
    ``signal_heads`` binary logits after the thresholds."""
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {', '.join(HEADS)}.")
    # A fresh head is the point of fine-tuning; transformers would report it as MISSING, in a warning.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base_model,
                                                                   num_labels=num_classes - 1 + signal_heads)
    finally:
        hf_logging.set_verbosity(verbosity)
    if head == "coral":
        _, layer = classification_layer(model)
        if layer.bias is None:
            raise ValueError(
                f"{base_model} has a classification layer without bias, and CORAL needs one bias per "
                "threshold; train it with head='independent' instead."
            )
        parametrize.register_parametrization(layer, "weight", SharedRow(num_classes - 1))
    return model


@torch.no_grad()
def init_thresholds(model: PreTrainedModel, classes: Sequence[int],
                    head_targets: Sequence[Sequence[float]] = ()) -> None:
    """Start each threshold bias at the training prior logit P(class > k), and each signal head's at the
    prior logit of its targets (``head_targets``: each head's known targets, in the heads' order).

    Fine-tuning learning rates move a bias by only ~lr per step, so biases left at zero would keep every
    CORAL threshold at the same place for the whole run; starting from the prior, training spends its steps
    on the text. Heads without a bias (decoder backbones' ``score``) keep theirs at zero.
    """
    _, layer = classification_layer(model)
    if layer.bias is None:
        return
    thresholds = layer.out_features - len(head_targets)
    counts = torch.bincount(torch.tensor(classes, dtype=torch.long), minlength=thresholds + 1).double()
    above = counts.flip(0).cumsum(0).flip(0)[1:]  # examples with class > k, for k = 0..K-2
    positives = torch.tensor([sum(targets) for targets in head_targets], dtype=torch.double)
    totals = torch.tensor([len(classes)] * thresholds + [len(targets) for targets in head_targets],
                          dtype=torch.double)
    prior = (torch.cat([above, positives]) + 1) / (totals + 2)  # Laplace smoothing keeps an empty class finite
    layer.bias.copy_(torch.logit(prior).to(layer.bias.dtype))


# ---------------------------------------------------------------------------------------- loss, prediction


def ordinal_targets(classes: torch.Tensor, num_thresholds: int) -> torch.Tensor:
    """Classes (batch,) -> binary targets (batch, K-1): [y > 0, y > 1, ...]."""
    thresholds = torch.arange(num_thresholds, device=classes.device)
    return (classes.unsqueeze(-1) > thresholds).float()


def ordinal_loss(
    logits: torch.Tensor, classes: torch.Tensor, class_weights: torch.Tensor | None = None,
    *, targets: torch.Tensor | None = None, mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy of every threshold logit against its target, averaged over thresholds, then
    over examples (weighted by their class's weight when given). ``targets`` (batch, K-1) replaces the 0/1
    targets of the classes with soft ones, e.g. a labeler's probabilities. ``mask`` (batch,) leaves out the
    examples at 0: those without a level, which only signal heads learn from."""
    if targets is None:
        targets = ordinal_targets(classes, logits.shape[-1])
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none").mean(dim=-1)
    if class_weights is None and mask is None:
        return losses.mean()
    weights = torch.ones_like(losses) if class_weights is None else class_weights.to(losses.device)[classes]
    if mask is not None:
        weights = weights * mask.float()
    return (losses * weights).sum() / weights.sum().clamp(min=1e-12)


def signal_head_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over signal heads of each head's binary cross-entropy, averaged over the examples that have a
    target for it (``mask`` 1); a head without one in the batch adds nothing. Each head weighs as much as
    the ordinal loss, however few examples it has."""
    losses = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    mask = mask.float()
    return ((losses * mask).sum(dim=0) / mask.sum(dim=0).clamp(min=1.0)).sum()


def balanced_class_weights(classes: Sequence[int], num_classes: int) -> torch.Tensor:
    """n / (present classes * count): every class present weighs as much in total, so rare rejections
    are not drowned out by the common levels, and the mean weight per example stays 1."""
    counts = torch.bincount(torch.tensor(classes), minlength=num_classes).double()
    present = int((counts > 0).sum())
    return torch.where(counts > 0, len(classes) / (present * counts.clamp(min=1)), 0.0).float()


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """The number of thresholds passed with probability above one half (CORAL's prediction rule)."""
    return (logits > 0).sum(dim=-1)


# ------------------------------------------------------------------------------------------ device, precision


# ---------------------------------------------------------------------------------------------------- saving


def save_reward_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    levels: Sequence[int],
    layout: str,
    max_length: int,
    heads: Sequence[str] = (),
) -> None:
    """Write a standard checkpoint plus the metadata the scoring service reads from ``config.tacit``.

    The CORAL head is materialised as a plain Linear with identical threshold rows, so
    ``AutoModelForSequenceClassification.from_pretrained(out_dir)`` needs no Tacit code. ``heads`` names
    the signal heads' logits after the thresholds; the key is left out without them, so such a checkpoint
    is exactly what it was before signal heads existed.
    """
    name, layer = classification_layer(model)
    head = "coral" if parametrize.is_parametrized(layer, "weight") else "independent"
    state = model.state_dict()
    if head == "coral":
        del state[f"{name}.parametrizations.weight.original"]
        state[f"{name}.weight"] = layer.weight.detach().clone()
    config = model.config
    labels = [f"level>{level}" for level in levels[:-1]] + list(heads)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: k for k, label in config.id2label.items()}
    config.tacit = {"layout": layout, "levels": list(levels), "head": head, "max_length": max_length,
                    **({"heads": list(heads)} if heads else {})}
    config.problem_type = "multi_label_classification"  # independent sigmoids per threshold, never a softmax
    model.save_pretrained(out_dir, state_dict=state)
    tokenizer.save_pretrained(out_dir)

