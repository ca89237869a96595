"""``tacit serve --ray``: the scoring app as a Ray Serve deployment on the embedded local Ray."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ray import serve

from tacit.core.endpoints import ray_connection
from tacit.devstack.stack import free_port
from tacit.model.scoring import RewardScorer
from tacit.serving import ray_app
from tests.helpers.serving import SETTINGS, TACIT_SPEC, TEXTS, save_tiny_checkpoint

pytestmark = pytest.mark.integration


def test_ray_serve_deployment_scores_like_the_checkpoint(settings, embedded_stack, tmp_path: Path) -> None:
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", 3, TACIT_SPEC)
    served = settings.model_copy(update={"precision": "float32", "serve_port": free_port()})

    with ray_connection(served):
        serve.start(http_options={"host": "127.0.0.1", "port": served.serve_port})
        try:
            serve.run(ray_app.application(served, checkpoint=checkpoint), name=ray_app.DEPLOYMENT,
                      route_prefix="/")
            url = f"http://127.0.0.1:{served.serve_port}"
            rewards = httpx.post(f"{url}/get_reward", json={"query": TEXTS}, timeout=60).json()["rewards"]
            info = httpx.get(f"{url}/v1/model", timeout=60).json()
        finally:
            serve.shutdown()

    expected = RewardScorer.load(checkpoint, SETTINGS).score_texts(TEXTS).rewards
    assert rewards == pytest.approx(expected, abs=1e-5)
    assert (info["checkpoint"], info["following_champion"]) == (checkpoint.name, False)
