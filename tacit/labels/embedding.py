"""The embedding labeler: MiniLM sentence embeddings of the follow-up and the reply, then a linear classifier.

Input, decided for cost and signal: the follow-up's embedding ``f`` (its start, where feedback is said) and
its element-wise product with the reply's embedding ``r`` (the reply's end, what the user read last). ``f``
carries the attitude ("thanks", "that's wrong"); ``f * r`` lets the classifier tell a follow-up that
continues the reply's topic from one that changes it, which the conservative rules treat differently. The
query and older history are left out: they cost a third encoding per item and say little about the user's
reaction. The classifier is multinomial logistic regression over the five levels; the label's confidence
is its predicted probability of the chosen level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tacit.core.domain import FeedbackCandidate, Label, SatisfactionLevel
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.labels.encoder import SentenceEncoder

SHIPPED_HEAD = Path(__file__).parent / "data" / "embedding_head.safetensors"
LEVELS = tuple(SatisfactionLevel)


@dataclass(frozen=True)
class EmbeddingHead:
    """Weights ``(5, 2 * dim)`` and bias ``(5,)`` over the features of :func:`candidate_features`.

    ``fitted_on`` says where its training labels came from; it travels in the file's metadata, next to
    the weights whose :attr:`digest` every label records in its ``labeler_version``.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    fitted_on: str

    @property
    def digest(self) -> str:
        """Short fingerprint of the weights: part of every label's version, so refits are told apart."""
        return hashlib.sha256(self.weight.numpy().tobytes() + self.bias.numpy().tobytes()).hexdigest()[:8]

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(features @ self.weight.T + self.bias, dim=-1)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(path),
                  metadata={"fitted_on": self.fitted_on, "levels": ",".join(str(int(v)) for v in LEVELS)})

    @classmethod
    def load(cls, path: Path) -> EmbeddingHead:
        tensors, metadata = read_head_file(path, "pt", f"No embedding classifier at {path}; create one with "
                                           "`tacit labelers fit` or unset TACIT_EMBEDDING_HEAD to use the shipped one.")
        return cls(tensors["weight"], tensors["bias"], metadata.get("fitted_on", "unknown"))


def read_head_file(path: Path, framework: str, missing: str) -> tuple[dict, dict[str, str]]:
    """A classifier file's tensors (``framework``: "pt" or "numpy") and metadata; ``missing`` is the error
    that says what to do when the file is not there."""
    if not path.is_file():
        raise TacitError(missing)
    with safe_open(str(path), framework) as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata() or {}


def candidate_features(encoder: SentenceEncoder, candidates: Sequence[FeedbackCandidate]) -> torch.Tensor:
    followups = encoder.encode([c.followup.content for c in candidates])
    responses = encoder.encode([c.response.content for c in candidates], truncate_left=True)
    return torch.cat([followups, followups * responses], dim=-1)


class EmbeddingLabeler:
    labeler_id = "embedding"

    def __init__(self, encoder: SentenceEncoder, head: EmbeddingHead) -> None:
        if head.weight.shape[1] != 2 * encoder.dim:
            raise TacitError(f"The embedding classifier expects {head.weight.shape[1] // 2}-dimensional "
                             f"embeddings but the encoder gives {encoder.dim}; refit it for this encoder "
                             "with `tacit labelers fit` (TACIT_EMBEDDING_HEAD) or unset TACIT_LABELER_ENCODER.")
        self.encoder = encoder
        self.head = head
        self.version = f"1+{head.digest}"

    @classmethod
    def from_settings(cls, settings: TacitSettings) -> EmbeddingLabeler:
        return cls(load_encoder(settings), EmbeddingHead.load(settings.embedding_head or SHIPPED_HEAD))

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        """The argmax labels, each with the classifier's (uncalibrated) probabilities of the five levels."""
        if not candidates:
            return []
        probabilities = self.head.probabilities(candidate_features(self.encoder, candidates))
        return [self._label(row) for row in probabilities.tolist()]

    def _label(self, probabilities: list[float]) -> Label:
        index = max(range(len(LEVELS)), key=probabilities.__getitem__)
        level, probability = LEVELS[index], probabilities[index]
        return Label(level=level, confidence=probability, reason=f"embedding: p({int(level)})={probability:.2f}",
                     labeler_id=self.labeler_id, labeler_version=self.version, probabilities=tuple(probabilities))


def load_encoder(settings: TacitSettings) -> SentenceEncoder:
    """The configured encoder, else the bundled MiniLM (never the trainer's TACIT_BASE_MODEL)."""
    bundled = settings.model_copy(update={"base_model": settings.labeler_encoder})
    return SentenceEncoder(bundled.resolved_base_model(), settings.precision)
