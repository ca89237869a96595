"""What `tacit train --ray-job` sends: the user's options and the settings the job rebuilds from TACIT_*."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tacit import cli
from tacit.core.cli import Wiring
from tacit.core.settings import TacitSettings
from tacit.trainer import submit


def test_the_job_rebuilds_the_same_settings_without_ray_address_or_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = TacitSettings(
        data_dir=tmp_path, database_url="postgresql+psycopg://db/tacit", kafka_bootstrap="broker:9092",
        ray_address="http://head:8265", eval_benchmarks=(tmp_path / "a.jsonl", tmp_path / "b.json"),
        learning_rate=3e-5, precision="float32", redact_pii=False, user_id_secret="s3cret",
    )
    environment = submit.settings_environment(settings)
    monkeypatch.chdir(tmp_path)  # no tacit.toml
    for name in ("TACIT_CONFIG", "RAY_ADDRESS", "TACIT_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    rebuilt = TacitSettings()

    assert rebuilt == settings.model_copy(update={"ray_address": None, "user_id_secret": None})
    assert "s3cret" not in environment.values()


class Offline(Wiring):
    """No database to check and no version to print: only what is submitted matters here."""

    def endpoint(self, component: str) -> str:
        return ""

    def print_version(self, version_id: int, *, details: bool = False) -> None:
        pass


def test_the_job_gets_the_options_given_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted = []
    monkeypatch.setattr(submit, "submit_training", lambda settings, arguments, echo: submitted.append(arguments))

    result = CliRunner().invoke(cli.app, [
        "train", "--local", "--ray-job", "--steps", "5", "--tenant", "a",
        "--since", "2026-01-02", "--class-weighting",
    ], obj=Offline())

    assert result.exit_code == 0, result.output
    assert submitted == [["--steps", "5", "--local", "--tenant", "a",
                          "--since", "2026-01-02 00:00:00", "--class-weighting"]]


class StartingHead:
    """A job server whose agent is up only from the third call, as a head that has just started."""

    def __init__(self, error: str = "No available agent to submit job, please try again later.") -> None:
        self.calls, self.error = 0, error

    def submit_job(self, **job) -> None:
        self.calls += 1
        if self.calls < 3:
            raise RuntimeError(f"Request failed with status code 500: {self.error}")


def test_submission_waits_for_the_job_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit.time, "sleep", lambda seconds: None)
    head = StartingHead()
    submit._submit_when_ready(head, entrypoint="true")
    assert head.calls == 3


def test_other_submission_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit.time, "sleep", lambda seconds: None)
    head = StartingHead(error="runtime_env is invalid")
    with pytest.raises(submit.RayJobError, match="runtime_env is invalid"):
        submit._submit_when_ready(head, entrypoint="true")
    assert head.calls == 1
