"""A reward-model checkpoint loaded for inference: texts in, ordinal rewards out.

Shared by the trainer (evaluation) and the scoring service, so a model is measured exactly as it is served.

Checkpoints are plain Hugging Face sequence-classification models with K-1 threshold logits, so the
published WildReward checkpoints load the same way as Tacit's own. What transformers does not know (which
layout renders the input, which satisfaction level each class stands for, which signal heads follow the
thresholds) travels in the ``tacit`` attribute of config.json.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tacit.core.errors import TacitError
from tacit.core.heads import SATISFACTION
from tacit.core.settings import Quantization, TacitSettings
from tacit.model import layouts
from tacit.model.hardware import compute_dtype, default_device
from tacit.model.layouts import LAYOUTS, Layout
from tacit.model.ordinal import classification_layer, level_probabilities, rewards_from_logits


class CheckpointError(TacitError):
    """The directory cannot be served as a reward model; the message says why and what to do."""


@dataclass(frozen=True)
class CheckpointSpec:
    """How to feed a checkpoint and read its outputs, from the ``tacit`` attribute of its config."""

    layout: Layout
    levels: tuple[int, ...]
    max_length: int
    heads: tuple[str, ...] = ()  # signal heads, one logit each after the K-1 thresholds

    @property
    def thresholds(self) -> int:
        return len(self.levels) - 1

    @classmethod
    def from_config(cls, config: PretrainedConfig, default_max_length: int) -> CheckpointSpec:
        """A checkpoint without the attribute is taken for a published WildReward one: that layout and
        levels 1..K; one without ``heads`` has the thresholds alone."""
        spec = getattr(config, "tacit", None) or {}
        heads = tuple(spec.get("heads", ()))
        levels = tuple(spec.get("levels", range(1, config.num_labels + 2)))
        if len(levels) + len(heads) != config.num_labels + 1:
            raise CheckpointError(
                f"config.json lists {len(levels)} levels {list(levels)} and {len(heads)} signal heads but the "
                f"model has {config.num_labels} logits; an ordinal head over K levels needs K-1, and each "
                "signal head one more. Re-export the checkpoint."
            )
        layout = spec.get("layout", "wildreward")
        if layout not in LAYOUTS:
            raise CheckpointError(f"config.json names layout {layout!r}; Tacit knows {', '.join(LAYOUTS)}.")
        return cls(layout=layout, levels=levels, max_length=int(spec.get("max_length", default_max_length)),
                   heads=heads)


Features = dict[str, list[int]]  # one text's tokenizer output: input_ids, attention_mask, ...


class Scores(NamedTuple):
    rewards: list[float]  # expected ordinal class on the 1..K scale
    level_probabilities: list[list[float]]  # K per text
    heads: list[dict[str, float]]  # per text, each signal head's probability (empty without signal heads)

    def by_head(self) -> dict[str, list[float]]:
        """Every head's outputs, one per text: the ordinal reward under ``satisfaction``, each signal head's
        probability under its name."""
        names = self.heads[0].keys() if self.heads else ()
        return {SATISFACTION: self.rewards, **{name: [row[name] for row in self.heads] for name in names}}


class RewardScorer:
    """One loaded checkpoint. Not thread-safe: the app calls it from a single dedicated thread."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        spec: CheckpointSpec,
        checkpoint: Path,
        batch_size: int,
        quantize: Quantization | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.quantize = quantize  # how far its rewards may stray from the checkpoint's (tacit.serving.swap)
        # A misconfigured length must not index past the position embeddings.
        self.max_length = min(spec.max_length, tokenizer.model_max_length)

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        settings: TacitSettings,
        *,
        threads: int | None = None,
        quantize: Quantization | None = None,
    ) -> RewardScorer:
        """Load offline, on the GPU when there is one, in ``settings.precision``. ``threads`` sets torch's CPU
        threads for the whole process, so a server that shares its cores can leave some to the event loop.
        ``quantize="int8"`` (CPU only) loads float32 weights and swaps every Linear layer for a dynamic int8
        one: its rewards differ slightly from the checkpoint's, which is why the trainer never asks for it."""
        checkpoint = Path(checkpoint)
        if not (checkpoint / "config.json").is_file():
            raise CheckpointError(
                f"{checkpoint} is not a Hugging Face checkpoint (no config.json): pass a directory written "
                "by `tacit train` or by `save_pretrained`."
            )
        if threads is not None:
            torch.set_num_threads(threads)
        device = default_device()
        if quantize is not None and device.type != "cpu":
            raise CheckpointError(
                "int8 quantisation (TACIT_SERVE_QUANTIZE) runs on CPUs only; on a GPU unset it and serve in "
                "TACIT_PRECISION=auto (bf16/fp16)."
            )
        dtype = torch.float32 if quantize else compute_dtype(device, settings.precision)
        try:
            spec, tokenizer, model = _read_checkpoint(checkpoint, dtype, settings.max_length)
        except CheckpointError:
            raise
        except Exception as error:  # a damaged or foreign file: name the checkpoint, not a loader's internals
            raise CheckpointError(
                f"{checkpoint} could not be loaded ({type(error).__name__}: {error}); write it again with "
                "`tacit train` or `save_pretrained`.") from error
        ensure_padding(tokenizer, model)
        if model.dtype != torch.float32:
            _head_in_float32(model)
        model = model.to(device).eval()
        if quantize == "int8":
            model = quantize_int8(model)
        return cls(model, tokenizer, spec, checkpoint, settings.serve_batch_size, quantize)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def render(self, history: Sequence[layouts.Turn], query: str, response: str) -> str:
        """The text this checkpoint reads for one item, in its own layout."""
        return layouts.render(history, query, response, self.spec.layout)

    def score_texts(self, texts: Sequence[str]) -> Scores:
        """Batches of similar length, padded only to their own longest text, in the caller's order."""
        return self.score_encoded(self.encode(texts))

    def encode(self, texts: Sequence[str]) -> list[Features]:
        """Token ids cut from the left to ``max_length``; the scoring service encodes off the model thread."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]

    @torch.inference_mode()
    def score_encoded(self, features: Sequence[Features]) -> Scores:
        if not features:
            return Scores([], [], [])
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]), reverse=True)
        logits = torch.empty(len(features), self.model.config.num_labels)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer.pad([features[i] for i in chunk], return_tensors="pt").to(self.device)
            logits[chunk] = self.model(**batch).logits.float().cpu()
        thresholds, signals = logits[:, : self.spec.thresholds], torch.sigmoid(logits[:, self.spec.thresholds :])
        heads = [dict(zip(self.spec.heads, row, strict=True)) for row in signals.tolist()]
        return Scores(rewards_from_logits(thresholds).tolist(), level_probabilities(thresholds).tolist(), heads)


# Replies of clearly different quality, so that a collapsed model would also show in the rewards. The trainer
# records a version's rewards on them; the scoring service checks that the model it loaded gives the same.
CANARY = (
    ("How do I reverse a list in Python?", "Use reversed(xs) for an iterator, or xs[::-1] for a new list."),
    ("How do I reverse a list in Python?", "I cannot help with that."),
    ("Translate 'good morning' into French.", "Bonjour."),
    ("Write a haiku about rain.", "Rain taps the window / the gutters hum a low song / streets shine like glass"),
)


def canary_rewards(scorer: RewardScorer) -> list[float]:
    return scorer.score_texts([scorer.render([], query, response) for query, response in CANARY]).rewards


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Every Linear layer with int8 weights, its activations quantised per call (PyTorch's dynamic
    quantisation, x86 int8 kernels): most of a transformer's CPU time is in those layers. Weights are
    scaled per output channel, which strays less from float32 than one scale per matrix at the same speed
    (``bench/quantize.py`` measures how far). PyTorch marks its eager quantisation API deprecated in favour
    of torchao without removing it; the warnings are silenced so that every load does not repeat them."""
    qconfig = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, qconfig, dtype=torch.qint8)


def _read_checkpoint(checkpoint: Path, dtype: torch.dtype, max_length: int):
    """Spec, tokenizer and model of a checkpoint directory, offline; the spec is checked before the weights
    are read."""
    config = AutoConfig.from_pretrained(checkpoint, local_files_only=True)
    spec = CheckpointSpec.from_config(config, max_length)
    # Truncate from the left: the response, which is what gets judged, comes last.
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, truncation_side="left", local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, config=config, dtype=dtype,
                                                               local_files_only=True)
    return spec, tokenizer, model


def _head_in_float32(model: PreTrainedModel) -> None:
    """The threshold head computes in float32 on the reduced-precision backbone's features: bf16 logits keep 8
    bits of mantissa, so replies whose rewards differ by a few thousandths (most replies, for a model that
    mostly predicts "neutral") came out tied, and a tie ranks nothing. The head is a few thousand weights."""
    _, head = classification_layer(model)
    head.float()
    head.register_forward_pre_hook(lambda module, inputs: tuple(value.float() for value in inputs))


def ensure_padding(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """Decoder checkpoints (Qwen3, as WildReward's) may lack a pad id, and their classification head
    finds each row's last real token by it: without one, batches of more than one text fail."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
