"""Data-parallel training on several Ray Train workers (``TorchTrainer``, PyTorch DDP).

Every worker runs the same ``train_reward_model`` as a single process does, on its share of the examples
(``Replica``); DDP averages the gradients, so N workers take the optimizer steps of one with N times the
batch. Worker 0 writes the checkpoint into the run's directory on its own node and publishes it to the
artifact location itself, so the evaluation task and the driver, wherever they run, read it from there
(``TACIT_ARTIFACT_URI``) and never from another node's disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
from pyarrow.fs import FSSpecHandler, PyFileSystem
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from tacit.core.artifacts import filesystem, local_copy, publish, remote_root
from tacit.core.examples import RewardExample
from tacit.core.settings import TacitSettings
from tacit.trainer.train import Replica, TrainConfig, TrainResult, split_examples, train_reward_model

PUBLISHED = "artifact_uri"  # worker 0's report: where it published the checkpoint (not a metric of the model)


def _worker(loop_config: dict[str, Any]) -> None:
    context = ray.train.get_context()
    replica = Replica(
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        device=ray.train.torch.get_device(),
        prepare=ray.train.torch.prepare_model,
    )
    examples, config, start_from, output_dir, settings = loop_config["args"]
    result = train_reward_model(examples, config, local_copy(start_from, settings), output_dir,
                                incremental=loop_config["incremental"], replica=replica)
    if replica.rank != 0:
        ray.train.report(result.metrics)
        return
    uri = publish(output_dir, output_dir.name, settings)
    # Ray Train keeps the metrics of checkpointed reports only. The model is already published where the
    # registry will point, so worker 0 checkpoints an empty directory: the metrics, without a second copy.
    with tempfile.TemporaryDirectory() as empty:
        ray.train.report({**result.metrics, PUBLISHED: uri}, checkpoint=ray.train.Checkpoint.from_directory(empty))


def train_on_workers(
    examples: Sequence[RewardExample],
    config: TrainConfig,
    start_from: str,
    output_dir: Path,
    settings: TacitSettings,
    *,
    incremental: bool,
    workers: int,
    use_gpu: bool,
) -> tuple[TrainResult, str]:
    """Fine-tune on ``workers`` Ray Train workers of the connected cluster, from ``start_from`` (a path, or
    the URI of a version); returns as the local run does, and the URI worker 0 published the checkpoint at."""
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"args": (examples, config, start_from, output_dir, settings), "incremental": incremental},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(name=output_dir.name, **_run_storage(settings, output_dir)),
    )
    metrics = dict(trainer.fit().metrics)
    uri = metrics.pop(PUBLISHED)
    _, holdout = split_examples(examples, config)
    return TrainResult(metrics=metrics, output_dir=output_dir, holdout=holdout), uri


def _run_storage(settings: TacitSettings, output_dir: Path) -> dict[str, Any]:
    """Where Ray Train keeps its own state (worker 0's report), which the workers and Ray Train's controller
    must all reach: next to the versions when those are in a remote store, else beside the run directory
    (one machine, or a models directory on a volume every node mounts)."""
    root = remote_root(settings)
    if root is None:
        return {"storage_path": str(output_dir.parent / "ray-train")}
    fs, path = filesystem(f"{root}/ray-train", settings)
    return {"storage_path": path, "storage_filesystem": PyFileSystem(FSSpecHandler(fs))}
