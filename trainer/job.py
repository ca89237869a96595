"""One training run end to end: run row, dataset, fine-tune (on Ray or in-process), artifact, version row.

The driver owns the database: it loads the examples, ships them to the Ray task and registers the result,
so a Ray worker needs only the model files and a writable models directory, never database credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import ray
from ray.exceptions import RayTaskError
from sqlalchemy.engine import Engine

from tacit.db import RunStatus, make_engine
from tacit.settings import TacitSettings
from tacit.stack import endpoint, ray_connection
from trainer.dataset import RewardExample, balance_report, label_scheme, load_examples
from trainer.registry import finish_run, record_ray_job, register_version, start_run
from trainer.train import TrainConfig, TrainResult, train_reward_model

logger = logging.getLogger(__name__)


def train_config(settings: TacitSettings, steps: int | None = None) -> TrainConfig:
    return TrainConfig(
        steps=settings.train_steps if steps is None else steps,
        batch_size=settings.train_batch_size,
        learning_rate=settings.learning_rate,
        max_length=settings.max_length,
        holdout_fraction=settings.holdout_fraction,
        seed=settings.seed,
        precision=settings.precision,
    )


def run_training(settings: TacitSettings, *, use_ray: bool = True, steps: int | None = None) -> int:
    """Train a reward model on every raw label and register it; returns the new model version id.

    On any failure the run row is marked failed with the error, and the error is raised again.
    """
    engine = make_engine(endpoint(settings, "postgres"))
    try:
        return _run(settings, engine, train_config(settings, steps), use_ray=use_ray)
    finally:
        engine.dispose()


def _run(settings: TacitSettings, engine: Engine, config: TrainConfig, *, use_ray: bool) -> int:
    base_model = settings.resolved_base_model()
    run_id = start_run(engine, {**asdict(config), "base_model": str(base_model), "use_ray": use_ray})
    try:
        examples = load_examples(engine)
        logger.info("Run %d: %s", run_id, balance_report(examples, label_scheme(config.label_scheme)))
        output_dir = settings.models_dir / f"run-{run_id}"
        if use_ray:
            result = _train_on_ray(settings, engine, run_id, examples, config, base_model, output_dir)
        else:
            result = train_reward_model(examples, config, base_model, output_dir)
        version_id = register_version(
            engine,
            run_id=run_id,
            base_model=str(base_model),
            artifact_uri=str(result.output_dir),
            metrics=result.metrics,
        )
    except BaseException as exc:
        finish_run(engine, run_id, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finish_run(engine, run_id, status=RunStatus.SUCCEEDED, num_examples=len(examples))
    logger.info("Run %d: registered model version %d at %s", run_id, version_id, result.output_dir)
    return version_id


def _train_on_ray(
    settings: TacitSettings,
    engine: Engine,
    run_id: int,
    examples: Sequence[RewardExample],
    config: TrainConfig,
    base_model: Path,
    output_dir: Path,
) -> TrainResult:
    """Run ``train_reward_model`` as one Ray task and wait for it; the task's own error is re-raised."""
    with ray_connection(settings):
        # A crashed fine-tune is not retried blindly: the run is marked failed and the next one starts over.
        task = ray.remote(train_reward_model).options(max_retries=0, **_task_resources())
        record_ray_job(engine, run_id, ray.get_runtime_context().get_job_id())
        try:
            return ray.get(task.remote(examples, config, base_model, output_dir))
        except RayTaskError as exc:
            raise exc.cause from exc


def _task_resources() -> dict[str, float]:
    """One GPU if the cluster has any; otherwise every core of the largest node, since a CPU fine-tune
    is bound by matrix multiplies that use them all (Ray sets the task's thread count to its num_cpus)."""
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": max(node["Resources"].get("CPU", 1) for node in ray.nodes() if node["Alive"])}
