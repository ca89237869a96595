"""Fixtures shared by the unit tests of the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from tacit.core.settings import TacitSettings


@pytest.fixture(scope="module")
def tokenizer_dir() -> Path:
    return TacitSettings().resolved_base_model()


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer: the real code path, in milliseconds."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(directory)
    return directory
