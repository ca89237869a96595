"""The labelers' commands: the ``labelers`` group (``fit``, ``eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tacit.core.cli import console, wiring

if TYPE_CHECKING:
    from tacit.labels.base import Labeler
    from tacit.labels.encoder import SentenceEncoder

app = typer.Typer()
labelers_app = typer.Typer(help="Labelers of follow-ups: fit the embedding or calibrated labeler's classifier, "
                           "evaluate.",
                           no_args_is_help=True)
app.add_typer(labelers_app, name="labelers")


@labelers_app.command("fit")
def labelers_fit(
    ctx: typer.Context,
    data: Annotated[list[Path], typer.Option(exists=True, help="Labeled items, a human set or a conversation log; "
                                             "repeat for several (each with its own --format).")],
    out: Annotated[Path, typer.Option(help="Where to write the classifier (.safetensors).")],
    format_name: Annotated[list[str] | None, typer.Option(
        "--format", help="Per --data, or one for all: 'labeled' (JSONL: history, query, response, followup, "
        "level), 'eurtad', 'dbdc3', 'feedbackqa' (human sets) or a `tacit replay` format.")] = None,
    teacher: Annotated[str, typer.Option(help="Labeler that labels a conversation log.")] = "rules",
    labeler: Annotated[str, typer.Option(help="Which classifier to fit: 'embedding' (argmax head) or "
                                         "'calibrated' (calibrated probabilities and thresholds).")] = "embedding",
    calibration: Annotated[str, typer.Option(help="Calibrated labeler: 'isotonic' or 'temperature'.")] = "isotonic",
    weak_rules: Annotated[bool, typer.Option(help="Calibrated labeler: let the rules fill in the levels a human "
                                             "set is silent on.")] = True,
) -> None:
    """Fit a labeler's classifier; point TACIT_EMBEDDING_HEAD (or TACIT_CALIBRATED_HEAD) at the result."""
    from tacit.core.errors import TacitError
    from tacit.labels import get_labeler
    from tacit.labels.embedding import load_encoder

    settings = wiring(ctx).settings()
    formats = format_name or ["labeled"]
    if len(formats) not in (1, len(data)):
        raise TacitError(f"Give one --format for all --data, or one per --data ({len(data)}); got {len(formats)}.")
    formats = formats * len(data) if len(formats) == 1 else formats
    encoder = load_encoder(settings)
    if labeler == "embedding":
        _fit_embedding(encoder, data, formats, get_labeler(teacher, settings), out)
    elif labeler == "calibrated":
        _fit_calibrated(encoder, data, formats, get_labeler(teacher, settings), out, calibration, weak_rules)
    else:
        raise TacitError(f"--labeler {labeler!r} has no classifier to fit; choose 'embedding' or 'calibrated'.")


def _fit_embedding(encoder: SentenceEncoder, data: list[Path], formats: list[str], teacher: Labeler,
                   out: Path) -> None:
    from tacit.labels.calibrating import load_source
    from tacit.labels.fitting import fit

    loaded = [load_source(path, fmt, teacher) for path, fmt in zip(data, formats, strict=True)]
    items = [item for source_items, _ in loaded for item in source_items]
    source = "+".join(name for _, name in loaded)
    head, report = fit(encoder, items, fitted_on=source)
    head.save(out)
    console.print(f"fitted on {report.train_items} items of {source}; on {report.holdout_items} held out: "
                  f"accuracy {report.accuracy:.3f}")
    for level, support in report.support.items():
        recall = report.recall.get(level)
        console.print(f"  level {level}: {support:5d} held out, recall {'-' if recall is None else f'{recall:.3f}'}")
    console.print(f"saved {out} (digest {head.digest})")


def _fit_calibrated(encoder: SentenceEncoder, data: list[Path], formats: list[str], teacher: Labeler, out: Path,
                    calibration: str, weak_rules: bool) -> None:
    from tacit.core.errors import TacitError
    from tacit.labels.calibrated import CALIBRATIONS
    from tacit.labels.calibrating import CalibratedFitConfig, fit_sources, load_source
    from tacit.labels.rules import RulesLabeler

    if calibration not in CALIBRATIONS:
        raise TacitError(f"--calibration {calibration!r}: choose one of {', '.join(CALIBRATIONS)}.")
    sources = [load_source(path, fmt, teacher) for path, fmt in zip(data, formats, strict=True)]
    config = CalibratedFitConfig(calibration=calibration, weak_rules=weak_rules)
    head, report = fit_sources(encoder, sources, RulesLabeler(), config)
    head.save(out)
    auc = "n/a" if report.out_of_fold_auc is None else f"{report.out_of_fold_auc:.3f}"
    console.print(f"fitted on {report.items} items ({', '.join(f'{k} {v}' for k, v in report.per_source.items())}); "
                  f"levels {report.level_counts}, {report.weak_labels} weak labels from the rules")
    console.print(f"out of fold: ROC-AUC (1-2 vs rest) {auc}, calibrated log-loss {report.out_of_fold_log_loss:.3f}")
    console.print(f"calibration {head.calibration.method}; thresholds P(<=2) >= {head.thresholds.dissatisfied:.3f}, "
                  f"P(>=4) >= {head.thresholds.positive:.3f}")
    console.print(f"saved {out} (version {head.version})")


@labelers_app.command("eval")
def labelers_eval(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(exists=True, help="Human-labeled follow-ups.")],
    labeler: Annotated[str, typer.Option(help="Labeler to evaluate.")] = "rules",
    format_name: Annotated[str, typer.Option("--format", help="'eurtad', 'dbdc3' (their derived files in "
                                             "shared/data), 'feedbackqa' (a file or the folder) or 'labeled' "
                                             "(JSONL: history, query, response, followup, level).")] = "labeled",
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate a random sample of this many items, the "
                                              "same each run (for slow labelers).")] = None,
) -> None:
    """Compare a labeler with human labels: per-level precision/recall, confusion, ROC-AUC, ECE, items/s."""
    from tacit.labels import get_labeler
    from tacit.labels.evaluation import evaluate, format_report, read_items

    report = evaluate(get_labeler(labeler, wiring(ctx).settings()), read_items(data, format_name, limit))
    print(format_report(report))
