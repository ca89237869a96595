"""The image and the compose file, read as Docker would: no engine runs here, so these checks are static."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from tacit.cli import app

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name} (.+)$", DOCKERFILE, flags=re.MULTILINE)


def test_image_runs_as_a_user_with_a_healthcheck_and_a_cpu_or_cuda_torch() -> None:
    [user] = instructions("USER")
    assert user not in ("root", "0")
    assert instructions("HEALTHCHECK")
    assert any(arg.startswith("TORCH_INDEX=") for arg in instructions("ARG"))
    assert "COPY tacit tacit" in DOCKERFILE  # the whole package, every stage


def test_build_context_leaves_out_the_virtual_environment_and_history() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".tacit"} <= set(ignored)


def test_compose_runs_every_role_after_migrations_with_no_password_in_the_file() -> None:
    services = COMPOSE["services"]
    commands = set(typer.main.get_command(app).commands)
    roles = {name: service for name, service in services.items() if "build" in service}
    assert {"migrate", "worker", "gateway", "schedule", "serve"} <= set(roles)
    for name, service in roles.items():
        assert service["command"][0] in commands, name
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert "--wait" in services["serve"]["command"]  # waits for a champion instead of restart-looping
    assert all("healthcheck" in services[name] for name in ("kafka", "postgres"))
    assert not re.search(r"PASSWORD\s*[:=]", (ROOT / "deploy" / "compose.yaml").read_text())  # in tacit.env


def test_kafka_is_a_complete_single_node_kraft_broker_reachable_by_name() -> None:
    kafka = COMPOSE["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "localhost" not in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@kafka:9093"
