"""Data-parallel training on several Ray Train workers (``TorchTrainer``, PyTorch DDP).

Every worker runs the same ``train_reward_model`` as a single process does, on its share of the examples
(``Replica``); DDP averages the gradients, so N workers take the optimizer steps of one with N times the
batch. Worker 0 writes the checkpoint into the run's directory, which must be on storage every worker
reaches (any path on one machine; a shared volume on a cluster).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from tacit.core.examples import RewardExample
from tacit.trainer.train import Replica, TrainConfig, TrainResult, split_examples, train_reward_model


def _worker(loop_config: dict[str, Any]) -> None:
    context = ray.train.get_context()
    replica = Replica(
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        device=ray.train.torch.get_device(),
        prepare=ray.train.torch.prepare_model,
    )
    result = train_reward_model(*loop_config["args"], incremental=loop_config["incremental"], replica=replica)
    # Ray Train keeps the metrics of checkpointed reports only. The model is already saved where the
    # registry points, so worker 0 checkpoints an empty directory: the metrics, without a second copy.
    with tempfile.TemporaryDirectory() as empty:
        checkpoint = ray.train.Checkpoint.from_directory(empty) if replica.rank == 0 else None
        ray.train.report(result.metrics, checkpoint=checkpoint)


def train_on_workers(
    examples: Sequence[RewardExample],
    config: TrainConfig,
    base_model: Path,
    output_dir: Path,
    *,
    incremental: bool,
    workers: int,
    use_gpu: bool,
) -> TrainResult:
    """Fine-tune on ``workers`` Ray Train workers of the connected cluster; returns as the local run does."""
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"args": (examples, config, base_model, output_dir), "incremental": incremental},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(name=output_dir.name, storage_path=str(output_dir.parent / "ray-train")),
    )
    result = trainer.fit()
    _, holdout = split_examples(examples, config)
    return TrainResult(metrics=dict(result.metrics), output_dir=output_dir, holdout=holdout)
