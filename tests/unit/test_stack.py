"""Embedded-stack bookkeeping that needs no process: state, external endpoints, helpful errors."""

import pytest

from tacit.core.endpoints import Endpoints, ServiceRecord, StackError, endpoint, resolve_endpoints
from tacit.core.kafka import required_topics
from tacit.core.settings import TacitSettings
from tacit.devstack import stack


def test_nothing_running_says_how_to_start_it(tmp_path):
    settings = TacitSettings(data_dir=tmp_path)
    assert set(stack.status(settings).values()) == {"not running"}
    with pytest.raises(StackError, match="tacit stack up.*TACIT_KAFKA_BOOTSTRAP"):
        endpoint(settings, "kafka")


def test_configured_endpoints_are_external_and_never_started(tmp_path):
    settings = TacitSettings(data_dir=tmp_path, kafka_bootstrap="kafka:9092",
                             database_url="postgresql+psycopg://db/tacit", ray_address="ray:6379")
    assert resolve_endpoints(settings) == Endpoints("kafka:9092", "postgresql+psycopg://db/tacit",
                                                                "ray:6379")
    assert all(line.startswith("external") for line in stack.status(settings).values())


def test_a_dead_recorded_process_is_reported(tmp_path):
    settings = TacitSettings(data_dir=tmp_path)
    stack._write_state(settings, {"kafka": ServiceRecord(address="127.0.0.1:1", pids=[2**22 + 7],
                                                               log="tansu.log")})
    assert stack.status(settings)["kafka"].startswith("dead")
    with pytest.raises(StackError):
        endpoint(settings, "kafka")


def test_changelog_has_as_many_partitions_as_its_source():
    topics = required_topics(TacitSettings(partitions=5))
    assert topics["chat-events"] == topics["tacit-worker-conversations-changelog"] == 5
