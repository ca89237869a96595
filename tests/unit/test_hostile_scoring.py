"""The scoring service under hostile bodies: every answer is a 4xx with a reason or a 200, never a 5xx."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacit.core.settings import TacitSettings
from tacit.model.scoring import RewardScorer
from tacit.serving.app import create_app
from tacit.serving.model import ServedModel
from tests.helpers.hostile import VALUES, bodies
from tests.helpers.serving import TACIT_SPEC, save_tiny_checkpoint

TURNS = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "robot"]),
                                        "content": st.text(max_size=8)}), max_size=3)
ITEM = st.fixed_dictionaries({}, optional={"query": st.text(max_size=8), "response": st.text(max_size=8),
                                           "history": TURNS})
FIELDS = {
    "/v1/score": {"items": st.lists(st.one_of(ITEM, VALUES), max_size=3)},
    "/v1/compare": {"pairs": st.lists(st.fixed_dictionaries({}, optional={"a": ITEM, "b": ITEM}), max_size=2)},
    "/get_reward": {"query": st.lists(st.one_of(st.text(max_size=8), VALUES), max_size=3)},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    service_settings = TacitSettings(precision="float32")
    checkpoint = save_tiny_checkpoint(tmp_path_factory.mktemp("hostile") / "model", 3, TACIT_SPEC)
    app = create_app(ServedModel(RewardScorer.load(checkpoint, service_settings), 1), service_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", list(FIELDS))
def test_hostile_bodies_get_an_answer_with_a_reason_never_a_server_error(client: TestClient, path: str) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies(FIELDS[path]))
    def check(body: bytes) -> None:
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code < 500, (body[:200], answer.text[:300])
        if answer.status_code != 200:
            assert answer.json()["detail"]

    check()
