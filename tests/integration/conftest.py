"""One embedded stack (real Tansu, PostgreSQL and Ray) for the integration tests, stopped even on failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tacit import stack
from tacit.settings import TacitSettings


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
def embedded_stack(settings: TacitSettings) -> Iterator[stack.Endpoints]:
    try:
        yield stack.up(settings, report=lambda line: None)
    finally:
        stack.down(settings, report=lambda line: None)
