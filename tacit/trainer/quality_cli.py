"""``tacit eval quality``: the reward-model quality benchmark from the command line (``tacit.trainer.quality``)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tacit.core.cli import console, wiring
from tacit.core.errors import TacitError

app = typer.Typer(help="Benchmarks of what the trainer makes.", no_args_is_help=True)

ALL = "all"


def parse_sizes(value: str) -> tuple[int | None, ...]:
    """``1000,3000,all`` -> (1000, 3000, None)."""
    try:
        sizes = tuple(None if part.strip() == ALL else int(part) for part in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give comma-separated example counts or 'all', e.g. 1000,all") from None
    if any(size is not None and size < 32 for size in sizes):
        raise typer.BadParameter("every size must be at least 32 examples")
    return sizes


def parse_variant(value: str) -> Any:
    """``five-reply:label_scheme=five,layout=reply`` -> Variant("five-reply", {...}), typed as TrainConfig."""
    from tacit.trainer.quality import Variant
    from tacit.trainer.train import TrainConfig

    name, _, spec = value.partition(":")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    overrides: dict[str, Any] = {}
    for assignment in filter(None, spec.split(",")):
        key, _, raw = assignment.partition("=")
        if key not in defaults or key == "seed":
            raise typer.BadParameter(f"{key!r} is not a training setting; choose from "
                                     f"{', '.join(k for k in defaults if k != 'seed')}")
        default = defaults[key]
        try:
            overrides[key] = raw.lower() in ("1", "true", "yes") if isinstance(default, bool) else type(default)(raw)
        except ValueError:
            raise typer.BadParameter(f"{assignment!r}: {key} takes a {type(default).__name__}") from None
    if not name:
        raise typer.BadParameter(f"{value!r}: name the variant, e.g. five:label_scheme=five")
    return Variant(name, overrides)


@app.command("quality")
def quality(
    ctx: typer.Context,
    pairs: Annotated[list[Path] | None, typer.Option(exists=True, dir_okay=False, help=(
        "Held-out preference file (HH-RLHF JSONL, PandaLM JSON, or prompt/chosen/rejected JSONL; repeatable). "
        "Default: the bundled HH-RLHF pairs."))] = None,
    data: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=(
        "Conversation log to label and train on (any `tacit replay` format). Default: the bundled sample."))] = None,
    store: Annotated[bool, typer.Option("--store", help="Train on the refined labels in PostgreSQL instead.")] = False,
    labeler: Annotated[str | None, typer.Option(help="Labeler for --data (default: TACIT_LABELER).")] = None,
    variant: Annotated[list[str] | None, typer.Option(help=(
        "A training recipe, NAME:SETTING=VALUE,... over the TACIT_* training settings (repeatable), e.g. "
        "five:label_scheme=five. Default: the current settings, as 'default'."))] = None,
    sizes: Annotated[str, typer.Option(help="Training examples per model, a learning curve: e.g. 1000,3000,all.")] = ALL,
    seeds: Annotated[int, typer.Option(min=1, help="Models per variant and size (different draw and initialisation).")] = 3,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps per model (default: TACIT_TRAIN_STEPS).")] = None,
    max_pairs: Annotated[int, typer.Option(min=10, help="Pairs per held-out set.")] = 200,
    bradley_terry: Annotated[bool, typer.Option(help=(
        "Also train the Bradley-Terry reference on explicit pairs left over from the held-out files."))] = True,
    out: Annotated[Path, typer.Option(help="Directory for measurements.jsonl and summary.md.")] = Path("quality"),
) -> None:
    """Train reward models on labeled follow-ups and score them on held-out preference pairs that share no
    conversation with their training data, next to "the longer reply wins" and a Bradley-Terry model trained
    on as many explicit pairs. Prints mean and spread over seeds per held-out set."""
    from tacit.data import HELDOUT_PAIRS
    from tacit.trainer.job import train_config
    from tacit.trainer.quality import Plan, Variant, heldout_sets, run_quality

    variants = tuple(parse_variant(v) for v in variant) if variant else (Variant("default"),)
    curve = parse_sizes(sizes)
    settings = wiring(ctx).settings()
    examples = _examples(settings, data, store, labeler or settings.labeler)
    sets, pool = heldout_sets(pairs or [HELDOUT_PAIRS], examples, max_pairs)
    plan = Plan(variants, curve, tuple(range(seeds)), bradley_terry and bool(pool))
    console.print(f"{len(examples)} training examples; held-out pairs: "
                  + ", ".join(f"{name} {len(found)}" for name, found in sets.items())
                  + f"; {plan.models} models to train")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "measurements.jsonl"
    with log.open("w") as lines:
        def record(measurement: Any) -> None:
            lines.write(json.dumps(asdict(measurement)) + "\n")
            lines.flush()
            console.print(f"{measurement.model} ({measurement.size} examples, seed {measurement.seed}): "
                          + ", ".join(f"{k} {v:.3f}" for k, v in measurement.accuracy.items()))

        measurements = run_quality(plan, examples, sets, pool, train_config(settings, steps),
                                   settings.resolved_base_model(), settings, record)
    _report(measurements, list(sets), out)


def _examples(settings: Any, data: Path | None, store: bool, labeler_name: str) -> list:
    if store:
        from tacit.core.db import make_engine
        from tacit.core.endpoints import endpoint
        from tacit.core.examples import load_examples

        engine = make_engine(endpoint(settings, "postgres"))
        try:
            examples = load_examples(engine)
        finally:
            engine.dispose()
    else:
        from tacit.data import SAMPLE_CONVERSATIONS
        from tacit.labels.registry import get_labeler
        from tacit.trainer.quality import examples_from_log

        examples = examples_from_log(data or SAMPLE_CONVERSATIONS, get_labeler(labeler_name, settings))
    if not examples:
        raise TacitError("No labeled examples to train on; replay chat logs first or pass --data.")
    return examples


def _report(measurements: list, set_names: list[str], out: Path) -> None:
    """The summary as a table on the console and as Markdown in ``out/summary.md`` (for the docs)."""
    from tacit.trainer.quality import summary_rows

    header = ["model", "examples", "seeds", *set_names, "mean", "holdout ECE", "train s"]
    rows = [
        [row["model"], str(row["examples"]), str(row["seeds"]),
         *(_cell(row[name]) for name in (*set_names, "mean")),
         _cell(row["holdout_ece"]) if row["holdout_ece"] else "", f"{row['train_seconds']:.0f}"]
        for row in summary_rows(measurements)
    ]
    table = Table(*header)
    for cells in rows:
        table.add_row(*cells)
    console.print(table)
    markdown = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    markdown += ["| " + " | ".join(cells) + " |" for cells in rows]
    (out / "summary.md").write_text("\n".join(markdown) + "\n")
    console.print(f"measurements in {out / 'measurements.jsonl'}, table in {out / 'summary.md'}")


def _cell(spread: tuple[float, float]) -> str:
    mean, deviation = spread
    return f"{mean:.3f} ± {deviation:.3f}" if deviation else f"{mean:.3f}"
