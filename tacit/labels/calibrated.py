"""The calibrated labeler: per-level probabilities calibrated on human judgments, and a decision rule.

It reads the same features as the embedding labeler (MiniLM embeddings of the follow-up ``f`` and the
reply's end ``r``: ``[f, f * r]``), but its classifier is fitted on human-labeled follow-ups
(`tacit labelers fit --labeler calibrated`), and it differs in two ways that matter for the rare levels:

- **Calibrated probabilities.** The classifier's five probabilities go through a calibration map fitted on
  predictions for items the classifier did not see (out-of-fold): temperature scaling (one divisor of the
  logits) or isotonic regression per level (then renormalised). The method and the data it was fitted on
  travel in the head's metadata and in every label's ``labeler_version``.
- **A decision rule, not argmax.** About three quarters of real follow-ups are neutral, so a classifier's
  most likely level is nearly always 3 even where dissatisfaction is likely. The stored level is 1 or 2
  when P(level <= 2) reaches a threshold, 4 or 5 when P(level >= 4) reaches another (the larger margin wins
  when both do), else 3; within a side the more probable level. Both thresholds are fitted on the same
  out-of-fold predictions to maximise the F1 of their side. The label's confidence is the calibrated
  probability of the stored level, so a stored 2 may carry a confidence well under one half.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from tacit.core.domain import FeedbackCandidate, Label, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.labels.embedding import LEVELS, candidate_features, load_encoder, read_head_file
from tacit.labels.encoder import SentenceEncoder

SHIPPED_CALIBRATED_HEAD = Path(__file__).parent / "data" / "calibrated_head.safetensors"
VERSION = "1"
TEMPERATURE, ISOTONIC = "temperature", "isotonic"
CALIBRATIONS = (TEMPERATURE, ISOTONIC)
DISSATISFIED = slice(0, 2)  # levels 1-2 as 0-based indexes
POSITIVE = slice(3, 5)  # levels 4-5


@dataclass(frozen=True)
class Calibration:
    """How the classifier's probabilities are mapped to calibrated ones.

    ``temperature`` divides the logits (temperature scaling); ``isotonic`` holds, per level, the knots
    ``(x, y)`` of a non-decreasing piecewise-linear map of that level's probability (sklearn's
    IsotonicRegression, clipped at the ends), after which the five are renormalised. ``fitted_on`` names
    the out-of-fold predictions the map and the thresholds were fitted on.
    """

    method: str
    fitted_on: str
    temperature: float = 1.0
    isotonic: tuple[tuple[np.ndarray, np.ndarray], ...] = field(default=())

    def apply(self, logits: np.ndarray) -> np.ndarray:
        if self.method == TEMPERATURE:
            return softmax(logits / self.temperature)
        raw = softmax(logits)
        mapped = np.stack([np.interp(raw[:, k], x, y) for k, (x, y) in enumerate(self.isotonic)], axis=1)
        total = mapped.sum(axis=1, keepdims=True)
        # An item every map sends to 0 keeps its raw probabilities rather than dividing by zero.
        return np.where(total > 0, mapped / np.where(total > 0, total, 1), raw)


@dataclass(frozen=True)
class Thresholds:
    """P(level <= 2) and P(level >= 4) at which the stored level leaves neutral."""

    dissatisfied: float
    positive: float


@dataclass(frozen=True)
class CalibratedHead:
    """A linear classifier over the five levels (``weight (5, dim)``, ``bias (5,)``), its calibration and
    thresholds; saved as one safetensors file whose metadata says what each part was fitted on."""

    weight: np.ndarray
    bias: np.ndarray
    calibration: Calibration
    thresholds: Thresholds
    fitted_on: str

    @property
    def digest(self) -> str:
        """Fingerprint of everything that decides a label: weights, calibration map, thresholds."""
        parts = [self.weight.astype(np.float32).tobytes(), self.bias.astype(np.float32).tobytes(),
                 np.float64(self.calibration.temperature).tobytes(),
                 np.float64([self.thresholds.dissatisfied, self.thresholds.positive]).tobytes()]
        parts += [knots.astype(np.float64).tobytes() for pair in self.calibration.isotonic for knots in pair]
        return hashlib.sha256(b"".join(parts)).hexdigest()[:8]

    @property
    def version(self) -> str:
        return f"{VERSION}+{self.calibration.method}+{self.digest}"

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Calibrated ``(n, 5)`` probabilities of levels 1-5."""
        return self.calibration.apply(features @ self.weight.T + self.bias)

    def save(self, path: Path) -> None:
        tensors = {"weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)}
        for k, (x, y) in enumerate(self.calibration.isotonic):
            tensors[f"isotonic_x_{k}"], tensors[f"isotonic_y_{k}"] = x.astype(np.float64), y.astype(np.float64)
        metadata = {
            "fitted_on": self.fitted_on, "levels": ",".join(str(int(v)) for v in LEVELS),
            "features": "followup,followup*reply", "calibration": self.calibration.method,
            "calibrated_on": self.calibration.fitted_on, "temperature": repr(self.calibration.temperature),
            "threshold_dissatisfied": repr(self.thresholds.dissatisfied),
            "threshold_positive": repr(self.thresholds.positive),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: Path) -> CalibratedHead:
        tensors, meta = read_head_file(path, "numpy", f"No calibrated classifier at {path}; create one with "
                                       "`tacit labelers fit --labeler calibrated` or unset TACIT_CALIBRATED_HEAD "
                                       "to use the shipped one.")
        isotonic = tuple((tensors[f"isotonic_x_{k}"], tensors[f"isotonic_y_{k}"])
                         for k in range(len(LEVELS)) if f"isotonic_x_{k}" in tensors)
        calibration = Calibration(meta["calibration"], meta.get("calibrated_on", "unknown"),
                                  float(meta.get("temperature", "1.0")), isotonic)
        thresholds = Thresholds(float(meta["threshold_dissatisfied"]), float(meta["threshold_positive"]))
        return cls(tensors["weight"], tensors["bias"], calibration, thresholds, meta.get("fitted_on", "unknown"))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def decide(probabilities: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """The stored level (1-5) of each row of calibrated probabilities, by the thresholds (module docstring)."""
    dissatisfied = probabilities[:, DISSATISFIED].sum(axis=1)
    positive = probabilities[:, POSITIVE].sum(axis=1)
    margin_low = dissatisfied - thresholds.dissatisfied
    margin_high = positive - thresholds.positive
    low = (margin_low >= 0) & (margin_low >= margin_high)
    high = (margin_high >= 0) & ~low
    levels = np.full(len(probabilities), int(SatisfactionLevel.NEUTRAL))
    levels[low] = 1 + probabilities[low, DISSATISFIED].argmax(axis=1)
    levels[high] = 4 + probabilities[high, POSITIVE].argmax(axis=1)
    return levels


class CalibratedLabeler:
    labeler_id = "calibrated"

    def __init__(self, encoder: SentenceEncoder, head: CalibratedHead) -> None:
        if head.weight.shape[1] != 2 * encoder.dim:
            raise TacitError(f"The calibrated classifier expects {head.weight.shape[1] // 2}-dimensional "
                             f"embeddings but the encoder gives {encoder.dim}; refit it for this encoder with "
                             "`tacit labelers fit --labeler calibrated` (TACIT_CALIBRATED_HEAD) or unset "
                             "TACIT_LABELER_ENCODER.")
        self.encoder = encoder
        self.head = head
        self.version = head.version

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> CalibratedLabeler:
        return cls(load_encoder(settings), CalibratedHead.load(settings.calibrated_head or SHIPPED_CALIBRATED_HEAD))

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        """Each label carries the calibrated probabilities it was decided from."""
        if not candidates:
            return []
        with torch.inference_mode():
            features = candidate_features(self.encoder, candidates).numpy()
        return labels_from(self.head, self.head.probabilities(features))


def labels_from(head: CalibratedHead, probabilities: np.ndarray) -> list[Label]:
    """The labels the head's thresholds decide from calibrated ``(n, 5)`` probabilities."""
    levels = decide(probabilities, head.thresholds)
    return [_label(int(level), row, head.version) for level, row in zip(levels, probabilities, strict=True)]


def _label(level: int, probabilities: np.ndarray, version: str) -> Label:
    dissatisfied = float(probabilities[DISSATISFIED].sum())
    confidence = float(probabilities[level - 1])
    return Label(level=SatisfactionLevel(level), confidence=confidence,
                 reason=f"calibrated: p({level})={confidence:.2f}, p(<=2)={dissatisfied:.2f}",
                 labeler_id=CalibratedLabeler.labeler_id, labeler_version=version,
                 probabilities=tuple(float(p) for p in probabilities))
