"""Sentence embeddings from a local MiniLM-style checkpoint: mean-pooled, L2-normalised, batched by length.

This is how all-MiniLM-L6-v2 was trained to be used (sentence-transformers' mean pooling), so cosine
similarities and a linear classifier on top behave as its authors measured. The embedding labeler and the
implicit-feedback mining both read follow-ups through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from tacit.core.errors import TacitError
from tacit.core.settings import Precision
from tacit.model.hardware import autocast, default_device

# Feedback sits at the start of a follow-up, and the end of a reply is what the user just read: 64 tokens
# (about 50 words) of each keep that signal, and the cost of a batch grows with its longest text.
MAX_TOKENS = 64
BATCH_SIZE = 64


class SentenceEncoder:
    """Texts in, one unit vector each out (``dim`` floats), in the input order.

    One call at a time (``encode`` sets the tokenizer's truncation side): the worker labels its batches
    one after the other, so a labeler never shares its encoder between threads.
    """

    def __init__(self, checkpoint: Path, precision: Precision = "auto") -> None:
        if not (checkpoint / "config.json").is_file():
            raise TacitError(f"No Hugging Face checkpoint at {checkpoint}; set TACIT_LABELER_ENCODER to a "
                             "local sentence-embedding model (unset: the bundled all-MiniLM-L6-v2).")
        self.device = default_device()
        self.precision = precision
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model = AutoModel.from_pretrained(checkpoint).to(self.device).eval()
        self.dim: int = self.model.config.hidden_size

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], *, truncate_left: bool = False) -> torch.Tensor:
        """``truncate_left`` keeps a text's end: the part of a long reply the user read last."""
        self.tokenizer.truncation_side = "left" if truncate_left else "right"
        # Similar lengths batched together waste little on padding; the order is restored at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start:start + BATCH_SIZE]
            out[chunk] = self._embed([texts[i] for i in chunk])
        return out

    def _embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS,
                               return_tensors="pt").to(self.device)
        with autocast(self.device, self.precision):
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
