"""The composed command line: version, the commands it lists, JSON output, clean errors, fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tacit import cli
from tacit.core import apikeys, registry
from tacit.core.apikeys import StoredKey
from tacit.core.cli import Wiring
from tacit.core.db import ModelVersion
from tacit.core.settings import TacitSettings

COMMANDS = {"replay", "worker", "gateway", "relabel", "labelers", "train", "backbone", "schedule", "score", "analyze", "eval",
            "serve", "pairs", "personas", "export", "dpo", "dashboard", "db", "keys", "models", "demo", "up", "stack"}
GROUPS = {"labelers": {"fit", "eval"}, "analyze": {"users"}, "eval": {"quality"}, "pairs": {"build", "rank"}, "personas": {"build"},
          "export": {"dpo", "rm"}, "dpo": {"online"}, "db": {"upgrade"}, "keys": {"create", "list", "revoke"},
          "models": {"list", "show", "promote", "rollback"}, "stack": {"up", "down", "status"}}
CREATED = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture
def no_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir, no tacit.toml and no configured endpoints: nothing runs anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TACIT_DATA_DIR", str(tmp_path))
    for name in ("TACIT_CONFIG", "TACIT_KAFKA_BOOTSTRAP", "TACIT_DATABASE_URL", "TACIT_RAY_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class OnSqlite(Wiring):
    """Commands get an engine that is never connected to (the store functions are replaced)."""

    def endpoint(self, component: str) -> str:
        return "sqlite://"


def test_version_is_the_installed_distribution() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"tacit {metadata.version('tacit')}\n"


def test_help_lists_every_command() -> None:
    assert set(typer.main.get_command(cli.app).commands) == COMMANDS
    result = CliRunner().invoke(cli.app, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 1}
    assert COMMANDS <= listed


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_group_lists_its_commands(group: str) -> None:
    result = CliRunner().invoke(cli.app, [group, "--help"])
    assert result.exit_code == 0, result.output
    assert all(command in result.stdout for command in GROUPS[group])


def test_stack_status_json_on_an_empty_data_dir(no_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACIT_KAFKA_BOOTSTRAP", "broker:9092")
    result = CliRunner().invoke(cli.app, ["stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert set(status) == {"kafka", "postgres", "ray"}
    assert status["kafka"] == {"state": "external", "address": "broker:9092", "pid": None, "log": None,
                               "description": "external at broker:9092"}
    assert status["postgres"]["state"] == status["ray"]["state"] == "stopped"


def test_keys_list_json_never_shows_a_key_or_its_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [StoredKey("k1", "acme", "ci", CREATED, None, key_hash="secret-hash"),
            StoredKey("k2", "acme", None, CREATED, CREATED, key_hash="other-hash")]
    monkeypatch.setattr(apikeys, "list_keys", lambda engine, tenant: keys)
    result = CliRunner().invoke(cli.app, ["keys", "list", "--json"], obj=OnSqlite())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"id": "k1", "tenant": "acme", "name": "ci", "read_only": False,
         "created_at": "2026-01-02T03:04:00+00:00", "revoked_at": None},
        {"id": "k2", "tenant": "acme", "name": None, "read_only": False, "created_at": "2026-01-02T03:04:00+00:00",
         "revoked_at": "2026-01-02T03:04:00+00:00"},
    ]
    assert "hash" not in result.stdout


def test_models_list_json_has_every_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    version = ModelVersion(id=3, training_run_id=None, tenant="acme", base_model="base", artifact_uri="file:///m/3",
                           status="champion", created_at=CREATED, promoted_at=None,
                           metrics={"holdout_qwk": 0.5, "reliability": [{"bin": 1, "ece": 0.1}]})
    monkeypatch.setattr(registry, "list_versions", lambda engine: [version])
    result = CliRunner().invoke(cli.app, ["models", "list", "--json"], obj=OnSqlite())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{
        "version": 3, "tenant": "acme", "status": "champion", "base_model": "base", "artifact_uri": "file:///m/3",
        "training_run_id": None, "created_at": "2026-01-02T03:04:00+00:00", "promoted_at": None,
        "metrics": {"holdout_qwk": 0.5, "reliability": [{"bin": 1, "ece": 0.1}]},
    }]


def test_a_tacit_error_is_one_line_without_a_traceback(
    no_stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tacit", "keys", "list"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: postgres is not running") and "Traceback" not in err


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    heavy = ("torch", "ray", "faust", "transformers")
    code = f"import sys, tacit.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_commands_take_the_settings_the_caller_wires_in(no_stack: Path) -> None:
    wired = Wiring(TacitSettings(data_dir=no_stack, ray_address="head:6379"))
    result = CliRunner().invoke(cli.app, ["stack", "status", "--json"], obj=wired)
    assert json.loads(result.stdout)["ray"]["address"] == "head:6379"
