"""One training run end to end: lock, run row, dataset, fine-tune and evaluate (on Ray or in-process),
version row, promotion gate.

The driver owns the database: it loads the examples, ships them to the Ray task and registers the result,
so a Ray worker needs only the model files and a writable models directory, never database credentials.
The task evaluates the new checkpoint and the champion on the same holdout and benchmarks, where the
accelerator is, and the driver's gate compares the two. Models cross processes by their URI only (the
champion's, the published checkpoint's), each process reading them through its own node's cache, so no
process depends on a path on another node.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayTaskError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tacit.core.artifacts import local_copy, publish
from tacit.core.db import FeedbackRow, ModelVersion, RunStatus, make_engine
from tacit.core.endpoints import endpoint, ray_connection
from tacit.core.errors import TacitError
from tacit.core.examples import (
    RewardExample,
    Selection,
    balance_report,
    label_scheme,
    labeler_versions,
    load_examples,
)
from tacit.core.fusion import FusionRule
from tacit.core.registry import (
    champion,
    finish_run,
    promote,
    register_version,
    reject,
    start_run,
    training_lock,
    update_run,
)
from tacit.core.settings import TacitSettings
from tacit.data import HELDOUT_PAIRS
from tacit.model.scoring import RewardScorer
from tacit.trainer.distributed import train_on_workers
from tacit.trainer.evaluate import benchmark_name, evaluate_checkpoint, load_pairs
from tacit.trainer.gate import Verdict, decide
from tacit.trainer.model_card import Provenance, write_model_card
from tacit.trainer.train import TrainConfig, TrainResult, train_reward_model

logger = logging.getLogger(__name__)



def train_config(settings: TacitSettings, steps: int | None = None, **overrides: Any) -> TrainConfig:
    """The settings' training fields, with ``overrides`` (``TrainConfig`` fields) taking precedence."""
    configured = {
        "steps": settings.train_steps if steps is None else steps,
        "batch_size": settings.train_batch_size,
        "learning_rate": settings.learning_rate,
        "max_length": settings.max_length,
        "holdout_fraction": settings.holdout_fraction,
        "seed": settings.seed,
        "precision": settings.precision,
        "heads": settings.train_heads,
    }
    return TrainConfig(**{**configured, **overrides})


@dataclass(frozen=True)
class Job:
    """Everything the training side needs, shipped to a Ray task as one object."""

    settings: TacitSettings
    examples: Sequence[RewardExample]
    config: TrainConfig
    start_from: str  # the base model's path, or the champion's URI when incremental
    output_dir: Path
    incremental: bool
    champion_uri: str | None


@dataclass(frozen=True)
class Evaluated:
    """What the training task sends back: the candidate's metrics and the champion's on the same data."""

    uri: str  # where the checkpoint is published (TACIT_ARTIFACT_URI), readable by every process
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)


def run_training(
    settings: TacitSettings,
    *,
    use_ray: bool = True,
    steps: int | None = None,
    selection: Selection | None = None,
    incremental: bool = False,
    resume: int | None = None,
    workers: int = 1,
    ray_job_id: str | None = None,
    tenant: str | None = None,
    **overrides: Any,
) -> int:
    """Train a reward model on the selected labels (default: every raw one), register it and gate it;
    returns the version id.

    ``tenant`` makes it that tenant's model: trained on its labels only, registered in its scope, and
    gated against its champion, else against the global champion (what its keys are served until then).

    ``incremental`` starts from the champion's weights instead of the base model. ``resume`` continues
    the interrupted run of that id from its last saved state (``save_every``). ``workers`` > 1 trains with
    data-parallel Ray Train workers (implies Ray). ``ray_job_id`` is the submission id of the Ray Job this
    driver runs in (``tacit train --ray-job``), recorded on the run row: the id `ray job logs|stop` take.
    ``overrides`` are ``TrainConfig`` fields. On any failure the run row is marked failed with the error,
    which is raised.
    """
    engine = make_engine(endpoint(settings, "postgres"))
    try:
        with training_lock(engine, lease=settings.pgbouncer_transaction_mode):
            config = train_config(settings, steps, **overrides)
            return _run(settings, engine, config, scoped(selection or Selection(), tenant), tenant,
                        incremental=incremental, resume=resume, use_ray=use_ray, workers=workers,
                        ray_job_id=ray_job_id)
    finally:
        engine.dispose()


def _run(
    settings: TacitSettings,
    engine: Engine,
    config: TrainConfig,
    selection: Selection,
    tenant: str | None,
    *,
    incremental: bool,
    resume: int | None,
    use_ray: bool,
    workers: int,
    ray_job_id: str | None,
) -> int:
    current = incumbent(engine, tenant)
    champion_uri = current.artifact_uri if current is not None else None
    if incremental and champion_uri is None:
        raise TacitError("No champion to continue from; train from the base model first (without --incremental).")
    start_from = champion_uri if incremental else str(settings.resolved_base_model())
    params = {
        **asdict(config), "base_model": start_from, "use_ray": use_ray, "workers": workers,
        "incremental": incremental, "resumed_from": resume, "tenant": tenant,
        "feedback_fusion": settings.feedback_fusion,
        "selection": json.loads(json.dumps(asdict(selection), default=str)),
    }
    started = time.monotonic()
    run_id = start_run(engine, params, feedback_watermark=_feedback_watermark(engine))
    if ray_job_id is not None:
        update_run(engine, run_id, ray_job_id=ray_job_id)
    try:
        ended_after = timedelta(seconds=settings.mining_idle_seconds) if config.heads else None
        examples = load_examples(engine, selection, FusionRule() if settings.feedback_fusion else None, ended_after)
        logger.info("Run %d: %s", run_id, balance_report(examples, label_scheme(config.label_scheme)))
        output_dir = settings.models_dir / f"run-{resume or run_id}"
        job = Job(settings, examples, config, start_from, output_dir, incremental, champion_uri)
        load_seconds = time.monotonic() - started
        if use_ray or workers > 1:
            evaluated = _on_ray(job, engine, run_id, workers, submitted=ray_job_id is not None)
        else:
            evaluated = train_and_evaluate(job)
        version_id = register_version(
            engine, run_id=run_id, base_model=start_from, artifact_uri=evaluated.uri,
            metrics=evaluated.candidate, tenant=tenant,
        )
        verdict = _gate(settings, engine, version_id, evaluated, current)
        provenance = Provenance(version_id, run_id, start_from, len(examples),
                                labeler_versions(engine, selection),
                                "promoted" if verdict.promote else "rejected", verdict.reasons)
        write_model_card(evaluated.uri, provenance, evaluated.candidate, settings)
    except BaseException as exc:
        finish_run(engine, run_id, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finish_run(engine, run_id, status=RunStatus.SUCCEEDED, num_examples=len(examples),
               timings={"load": load_seconds, **evaluated.timings})
    logger.info("Run %d: registered model version %d at %s", run_id, version_id, evaluated.uri)
    return version_id


def scoped(selection: Selection, tenant: str | None) -> Selection:
    """``selection`` narrowed to ``tenant``'s labels: a tenant's model learns from its own users only."""
    if tenant is None:
        return selection
    if selection.tenants not in ((), (tenant,)):
        raise TacitError(f"A model of tenant {tenant!r} trains on that tenant's labels only; leave the other "
                         f"tenants ({', '.join(selection.tenants)}) out of the selection.")
    return replace(selection, tenants=(tenant,))


def incumbent(engine: Engine, tenant: str | None) -> ModelVersion | None:
    """The champion a new version of ``tenant``'s scope must not be worse than: the tenant's own, else the
    global one, which is what the tenant's keys are served until it has its own."""
    own = champion(engine, tenant) if tenant is not None else None
    return own or champion(engine)


def _feedback_watermark(engine: Engine) -> int:
    """The newest feedback id now: the schedule counts labels that arrived after it."""
    with engine.connect() as connection:
        return connection.scalar(select(func.coalesce(func.max(FeedbackRow.id), 0)))


def _gate(
    settings: TacitSettings, engine: Engine, version_id: int, evaluated: Evaluated, current: ModelVersion | None
) -> Verdict:
    verdict = decide(evaluated.candidate, evaluated.champion, settings.gate_tolerance)
    if current is not None:
        scope = "the global" if current.tenant is None else f"tenant {current.tenant}'s"
        verdict.reasons.insert(0, f"compared with {scope} champion, version {current.id}, on the same data")
    if verdict.promote:
        promote(engine, version_id, reason=verdict.reasons, settings=settings)
        logger.info("Version %d promoted: %s", version_id, "; ".join(verdict.reasons))
    else:
        reject(engine, version_id, reasons=verdict.reasons)
        logger.info("Version %d rejected: %s", version_id, "; ".join(verdict.reasons))
    return verdict


def train_and_evaluate(job: Job) -> Evaluated:
    """Fine-tune in this process, publish, then evaluate (see ``evaluate_result``)."""
    started = time.monotonic()
    result = train_reward_model(job.examples, job.config, local_copy(job.start_from, job.settings), job.output_dir,
                                incremental=job.incremental)
    train_seconds = time.monotonic() - started
    # Published here, where the files are, and before the driver registers it: a registered version is
    # complete wherever it is read.
    uri = publish(result.output_dir, result.output_dir.name, job.settings)
    return evaluate_result(job, result, uri, train_seconds=train_seconds)


def evaluate_published(job: Job, result: TrainResult, uri: str, *, train_seconds: float) -> Evaluated:
    """``evaluate_result`` of a checkpoint that Ray Train's worker 0 published: read from ``uri``, since its
    run directory is on that worker's node."""
    here = replace(result, output_dir=local_copy(uri, job.settings))
    return evaluate_result(job, here, uri, train_seconds=train_seconds)


def evaluate_result(job: Job, result: TrainResult, uri: str, *, train_seconds: float) -> Evaluated:
    """Score the new checkpoint (its files in ``result.output_dir``, published at ``uri``) and the champion
    on the same holdout and benchmarks."""
    started = time.monotonic()
    settings = job.settings
    paths = settings.eval_benchmarks or (HELDOUT_PAIRS,)
    benchmarks = {benchmark_name(path): load_pairs(path)[: settings.eval_max_pairs] for path in paths}

    def measure(checkpoint: Path) -> dict[str, Any]:
        return evaluate_checkpoint(RewardScorer.load(checkpoint, settings), result.holdout, benchmarks)

    candidate = {**result.metrics, **measure(result.output_dir)}
    incumbent = measure(local_copy(job.champion_uri, settings)) if job.champion_uri is not None else None
    timings = {"train": train_seconds, "evaluate": time.monotonic() - started}
    return Evaluated(uri, candidate, incumbent, timings)


def _on_ray(job: Job, engine: Engine, run_id: int, workers: int, *, submitted: bool) -> Evaluated:
    """Run ``train_and_evaluate`` as one Ray task, or with ``workers`` > 1 train on that many Ray Train
    workers and evaluate what they published in a task; the task's own error is re-raised. The run keeps
    the submission id of a submitted job; otherwise it records this driver's Ray job id."""
    with ray_connection(job.settings):
        if not submitted:
            update_run(engine, run_id, ray_job_id=ray.get_runtime_context().get_job_id())
        # A crashed fine-tune is not retried blindly: the run is marked failed and the next one starts over.
        try:
            if workers == 1:
                task = ray.remote(train_and_evaluate).options(max_retries=0, **_task_resources())
                return ray.get(task.remote(job))
            started = time.monotonic()
            result, uri = train_on_workers(
                job.examples, job.config, job.start_from, job.output_dir, job.settings,
                incremental=job.incremental, workers=workers,
                use_gpu=ray.cluster_resources().get("GPU", 0) >= workers,
            )
            task = ray.remote(evaluate_published).options(max_retries=0, **_task_resources())
            return ray.get(task.remote(job, result, uri, train_seconds=time.monotonic() - started))
        except RayTaskError as exc:
            raise exc.cause from exc


def _task_resources() -> dict[str, float]:
    """One GPU if the cluster has any; otherwise every core of the largest node, since a CPU fine-tune
    is bound by matrix multiplies that use them all (Ray sets the task's thread count to its num_cpus)."""
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": max(node["Resources"].get("CPU", 1) for node in ray.nodes() if node["Alive"])}
