"""Where Kafka, PostgreSQL and Ray are: the configured endpoints, else the running embedded stack's.

Services find the components here, from the settings and the embedded stack's state file
(``<data_dir>/stack.json``, written by ``tacit stack up``), without importing the code that starts them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings

COMPONENTS = ("kafka", "postgres", "ray")


class StackError(TacitError):
    """Something in the stack could not start or be reached; the message says what to do."""


@dataclass
class ServiceRecord:
    """One running component: the PIDs to stop and the address clients use."""

    address: str
    pids: list[int]
    log: str
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        return bool(self.pids) and pid_alive(self.pids[0])


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    ray_address: str


def state_path(settings: TacitSettings) -> Path:
    return settings.data_dir / "stack.json"


def read_state(settings: TacitSettings) -> dict[str, ServiceRecord]:
    path = state_path(settings)
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: ServiceRecord(**record) for name, record in raw.items()}


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def printable(address: str) -> str:
    """An address fit for a terminal or a log: a database URL's password masked."""
    from sqlalchemy import make_url

    return make_url(address).render_as_string(hide_password=True) if "://" in address else address


def ray_token_file(settings: TacitSettings) -> Path:
    return settings.data_dir / "ray" / "auth-token"


def embedded_ray_environment(settings: TacitSettings) -> dict[str, str]:
    """How the embedded Ray runs and is reached: with token authentication, since Ray binds its GCS,
    raylets and agents to every interface and has no setting to keep them on 127.0.0.1. The token lives in
    the data directory, not in ``~/.ray/auth_token``, whose mere presence turns token mode on for every
    other local Ray cluster of the same user."""
    return {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(ray_token_file(settings))}


def authenticate_to_ray(settings: TacitSettings) -> None:
    """Make this process present the token of the Ray cluster it is about to join.

    For the embedded cluster the token is the stack's; for a configured one, the standard ``RAY_AUTH_MODE``
    and ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH`` variables. Ray reads them once, when it is first
    loaded, and every Tacit process has loaded it before it knows which cluster it joins (the trainer
    imports Ray at module level), so Ray is made to read them again here.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    if not settings.ray_address and ray_token_file(settings).exists():
        os.environ.update(embedded_ray_environment(settings))
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def external_address(settings: TacitSettings, component: str) -> str | None:
    return {
        "kafka": settings.kafka_bootstrap,
        "postgres": settings.database_url,
        "ray": settings.ray_address,
    }[component]


ENDPOINT_VARIABLES = {"kafka": "TACIT_KAFKA_BOOTSTRAP", "postgres": "TACIT_DATABASE_URL", "ray": "RAY_ADDRESS"}


def endpoint(settings: TacitSettings, component: str) -> str:
    """Where one component is: its configured endpoint, else the running embedded stack's."""
    address = external_address(settings, component)
    if address:
        return address
    record = read_state(settings).get(component)
    if record is None or not record.alive():
        raise StackError(
            f"{component} is not running. Start the embedded stack with `tacit stack up` "
            f"(data dir {settings.data_dir}), or point {ENDPOINT_VARIABLES[component]} at your own."
        )
    return record.address


@contextmanager
def ray_connection(settings: TacitSettings) -> Iterator[None]:
    """Join the configured or embedded Ray cluster for the block, unless this process already has."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = endpoint(settings, "ray")
    authenticate_to_ray(settings)
    ray.init(address=address, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


def resolve_endpoints(settings: TacitSettings) -> Endpoints:
    return Endpoints(*(endpoint(settings, name) for name in COMPONENTS))
