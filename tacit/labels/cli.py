"""The labelers' commands: the ``labelers`` group (``fit``, ``eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tacit.core.cli import console, wiring

app = typer.Typer()
labelers_app = typer.Typer(help="Labelers of follow-ups: fit the embedding labeler's classifier, evaluate.",
                           no_args_is_help=True)
app.add_typer(labelers_app, name="labelers")


@labelers_app.command("fit")
def labelers_fit(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Labeled items or a conversation log.")],
    out: Annotated[Path, typer.Option(help="Where to write the classifier (.safetensors).")],
    format_name: Annotated[str, typer.Option("--format", help="'labeled' (JSONL: history, query, response, "
                                             "followup, level) or a `tacit replay` format.")] = "labeled",
    teacher: Annotated[str, typer.Option(help="Labeler that labels a conversation log.")] = "rules",
) -> None:
    """Fit the embedding labeler's classifier; point TACIT_EMBEDDING_HEAD at the result to use it."""
    from tacit.labels import get_labeler
    from tacit.labels.datasets import load_items
    from tacit.labels.embedding import load_encoder
    from tacit.labels.fitting import fit

    settings = wiring(ctx).settings()
    items, source = load_items(data, format_name, get_labeler(teacher, settings))
    head, report = fit(load_encoder(settings), items, fitted_on=source)
    head.save(out)
    console.print(f"fitted on {report.train_items} items of {source}; on {report.holdout_items} held out: "
                  f"accuracy {report.accuracy:.3f}")
    for level, support in report.support.items():
        recall = report.recall.get(level)
        console.print(f"  level {level}: {support:5d} held out, recall {'-' if recall is None else f'{recall:.3f}'}")
    console.print(f"saved {out} (digest {head.digest})")


@labelers_app.command("eval")
def labelers_eval(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Human-labeled follow-ups.")],
    labeler: Annotated[str, typer.Option(help="Labeler to evaluate.")] = "rules",
    format_name: Annotated[str, typer.Option("--format", help="'eurtad', 'dbdc3' (their derived files in "
                                             "shared/data) or 'labeled' (JSONL: history, query, response, "
                                             "followup, level).")] = "labeled",
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate a random sample of this many items, the "
                                              "same each run (for slow labelers).")] = None,
) -> None:
    """Compare a labeler with human labels: per-level precision/recall, confusion matrix, ROC-AUC, items/s."""
    from tacit.labels import get_labeler
    from tacit.labels.evaluation import evaluate, format_report, read_items

    report = evaluate(get_labeler(labeler, wiring(ctx).settings()), read_items(data, format_name, limit))
    print(format_report(report))
