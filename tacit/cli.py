"""The ``tacit`` command line.

The CLI (with :mod:`tacit.demo`) is where the stages are composed; every stage import is inside its
command so that ``tacit --help`` stays fast and the core modules of ``tacit`` never depend on a stage.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tacit import stack
from tacit.errors import TacitError
from tacit.settings import TacitSettings, get_settings

console = Console(stderr=True)
app = typer.Typer(
    help="Tacit: turn live chatbot logs into an ordinal reward model that keeps learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the embedded stack (Tansu, PostgreSQL, Ray).",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")


def _settings() -> TacitSettings:
    return get_settings()


def main() -> None:
    """Console entry point: errors a user can act on are printed as one message, not a traceback."""
    try:
        app(prog_name="tacit")
    except TacitError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


def _endpoint(component: str) -> str:
    return stack.endpoint(_settings(), component)


# ------------------------------------------------------------------------------------------------- stack


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded components that are not configured elsewhere and not running yet."""
    stack.up(_settings(), report=console.print)


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes that `tacit stack up` started (by PID)."""
    stack.down(_settings(), report=console.print)


@stack_app.command("status")
def stack_status() -> None:
    """Show where each component runs."""
    for name, line in stack.status(_settings()).items():
        console.print(f"{name:9s} {line}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the configured or embedded database."""
    from tacit import db

    db.upgrade(_endpoint("postgres"))
    console.print("schema at the newest migration")


# ------------------------------------------------------------------------------------------------ ingest


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Log file: JSONL (gzip ok) or parquet.")],
    format_name: Annotated[str | None, typer.Option(
        "--format", help="tacit, wildchat, lmsys, sharegpt, openai, hh or oasst (default: from the first record).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant of the events (default: TACIT_DEFAULT_TENANT).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many conversations.")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Send at most this many events per second.")] = None,
) -> None:
    """Send a log file's conversations to the chat-events topic, one event per message.

    Formats (one record per JSONL line; wildchat and lmsys also as .parquet):

    tacit: {"conversation_id", "user_id"?, "model"?, "messages": [{"role", "content"}]}.

    wildchat: WildChat {"conversation_hash", "hashed_ip" (the user), "model", "language",
    "conversation": [{"role", "content", "timestamp"?}]}.

    lmsys: LMSYS-Chat-1M {"conversation_id", "model", "language", "conversation": [{"role", "content"}]}.

    sharegpt: {"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}]}.

    openai: {"messages": [{"role", "content"}]}, content a string or a list of parts (text parts kept);
    tool messages and tool-call-only replies are left out.

    hh: HH-RLHF {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected"}: the chosen transcript.

    oasst: OpenAssistant message trees {"message_tree_id", "prompt": {..., "replies": [...]}}: every
    root-to-leaf path is a conversation, the tree its user.

    System messages are kept (role system). Conversation ids come from the source (a hash of the messages
    where it has none), so importing a file twice changes nothing downstream. Unusable records are skipped
    and counted by reason.
    """
    from rich.table import Table

    from ingest.replay import ReplayOptions
    from ingest.replay import replay as replay_file

    options = ReplayOptions(format_name, tenant=tenant, limit=limit, rate=rate)
    report = replay_file(file, _settings(), _endpoint("kafka"), options)
    table = Table(title=f"replayed {file.name}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("events sent", str(report.events))
    table.add_row("conversations", str(report.conversations))
    for reason, count in report.skipped.most_common():
        table.add_row(f"skipped: {reason}", str(count))
    console.print(table)


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Run a stream worker: rate follow-ups and store them in Postgres, until interrupted."""
    from ingest.app import run_worker

    run_worker(_settings(), _endpoint("kafka"), _endpoint("postgres"), loglevel=loglevel)


# ---------------------------------------------------------------------------------- API keys and gateway


keys_app = typer.Typer(help="Per-tenant API keys of the gateway and the scoring service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant this key writes and scores for.")],
    name: Annotated[str | None, typer.Option(help="What the key is for, shown by `tacit keys list`.")] = None,
) -> None:
    """Make a key and print it (on stdout) once: only its hash is stored."""
    from tacit import apikeys

    stored, key = apikeys.create(_registry(), tenant, name)
    console.print(f"key {stored.id} of tenant {stored.tenant}; keep it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None) -> None:
    """Every key's id, tenant, name and dates; never the keys themselves."""
    from rich.table import Table

    from tacit import apikeys

    table = Table("id", "tenant", "name", "created", "revoked")
    for key in apikeys.list_keys(_registry(), tenant):
        table.add_row(key.id, key.tenant, key.name or "", f"{key.created_at:%Y-%m-%d %H:%M}",
                      f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `tacit keys list`).")]) -> None:
    """Revoke a key: refused everywhere within TACIT_API_KEY_CACHE_S seconds."""
    from tacit import apikeys

    key = apikeys.revoke(_registry(), key_id)
    console.print(f"key {key.id} of tenant {key.tenant} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S}")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_GATEWAY_PORT).")] = None,
) -> None:
    """Take chat events over HTTP (POST /v1/events with a tenant's API key) and put them on Kafka."""
    from ingest.gateway import run

    run(_settings(), host=host, port=port)


# ---------------------------------------------------------------------------------------------- labelers

labelers_app = typer.Typer(help="Labelers of follow-ups: fit the embedding labeler's classifier, evaluate.",
                           no_args_is_help=True)
app.add_typer(labelers_app, name="labelers")


@labelers_app.command("fit")
def labelers_fit(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Labeled items or a conversation log.")],
    out: Annotated[Path, typer.Option(help="Where to write the classifier (.safetensors).")],
    format_name: Annotated[str, typer.Option("--format", help="'labeled' (JSONL: history, query, response, "
                                             "followup, level) or a `tacit replay` format.")] = "labeled",
    teacher: Annotated[str, typer.Option(help="Labeler that labels a conversation log.")] = "rules",
) -> None:
    """Fit the embedding labeler's classifier; point TACIT_EMBEDDING_HEAD at the result to use it."""
    from labelers import get_labeler
    from labelers.datasets import load_items
    from labelers.embedding import load_encoder
    from labelers.fitting import fit

    settings = _settings()
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
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Human-labeled follow-ups.")],
    labeler: Annotated[str, typer.Option(help="Labeler to evaluate.")] = "rules",
    format_name: Annotated[str, typer.Option("--format", help="'eurtad', 'dbdc3' (their derived files in "
                                             "shared/data) or 'labeled' (JSONL: history, query, response, "
                                             "followup, level).")] = "labeled",
) -> None:
    """Compare a labeler with human labels: per-level precision/recall, confusion matrix, ROC-AUC, items/s."""
    from labelers import get_labeler
    from labelers.evaluation import evaluate, format_report, read_items

    report = evaluate(get_labeler(labeler, _settings()), read_items(data, format_name))
    print(format_report(report))


@app.command()
def relabel(
    labeler: Annotated[str | None, typer.Option(help="Labeler to use (default: TACIT_LABELER).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's conversations.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only conversations seen since then (ISO time).")] = None,
) -> None:
    """Derive the labels again (raw, refined, filtered) from the stored messages; safe to run twice."""
    from rich.progress import Progress

    from labelers import get_labeler
    from labelers.relabel import Scope, count_conversations
    from labelers.relabel import relabel as run_relabel
    from tacit.db import make_engine

    settings = _settings()
    engine = make_engine(_endpoint("postgres"))
    scope = Scope(tenant, since)
    chosen = get_labeler(labeler or settings.labeler, settings)
    with Progress(console=console) as progress:
        task = progress.add_task("conversations", total=count_conversations(engine, scope))
        written = run_relabel(engine, chosen, scope, settings.conversation_window,
                              on_chunk=lambda done: progress.advance(task, done))
    stages = ", ".join(f"{stage} {count}" for stage, count in sorted(written.items())) or "nothing"
    console.print(f"relabeled with {chosen.labeler_id} {chosen.version}: {stages}")


# ----------------------------------------------------------------------------------------------- trainer


models_app = typer.Typer(help="Model versions: list, inspect, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command()
def train(
    ctx: typer.Context,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: TACIT_TRAIN_STEPS).")] = None,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Run as a Ray task, or in this process.")] = True,
    incremental: Annotated[bool, typer.Option(help="Start from the champion's weights, not the base model.")] = False,
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants (repeatable).")] = None,
    labeler: Annotated[list[str] | None, typer.Option(help="Only ratings by these labelers (repeatable).")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="Rating stages to use (repeatable; default refined: raw labels after refusal validation, filtered items left out).")] = None,
    level: Annotated[list[int] | None, typer.Option(min=1, max=5, help="Only these levels (repeatable).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only replies sent at or after this time.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Only replies sent before this time.")] = None,
    split: Annotated[str, typer.Option(help="Holdout by 'user' (unseen people) or 'time' (newest).")] = "user",
    scheme: Annotated[str, typer.Option(help="'wildfb' (neutral dropped, 4 classes) or 'five'.")] = "wildfb",
    layout: Annotated[str, typer.Option(help="Model input: 'compact' or 'wildreward'.")] = "compact",
    head: Annotated[str, typer.Option(help="'coral' (rank-consistent) or 'independent' (WildReward).")] = "coral",
    accumulate: Annotated[int, typer.Option(min=1, help="Gradient accumulation: batches per optimizer step.")] = 1,
    class_weighting: Annotated[bool, typer.Option(help="Weigh every class equally in the loss.")] = False,
    save_every: Annotated[int, typer.Option(min=0, help="Save a resumable state every N steps (0: never).")] = 0,
    resume: Annotated[int | None, typer.Option(help="Continue the interrupted run with this id.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Data-parallel Ray Train workers (DDP); >1 implies --ray.")] = 1,
    ray_job: Annotated[bool, typer.Option("--ray-job", help="Submit this command as a Ray Job to RAY_ADDRESS "
                                          "(the other options apply there); Ctrl-C stops the job.")] = False,
    ray_job_id: Annotated[str | None, typer.Option(hidden=True, help="Set by --ray-job on the job.")] = None,
) -> None:
    """Train a reward model on the stored labels, evaluate it against the champion, promote or reject it."""
    _endpoint("postgres")
    if ray_job:
        from trainer.submit import submit_training

        _print_version(submit_training(_settings(), _given_options(ctx, leave_out="ray_job"),
                                       echo=lambda text: typer.echo(text, nl=False)))
        return
    from trainer.dataset import Selection
    from trainer.job import run_training

    if ray or workers > 1:
        _endpoint("ray")
    selection = Selection(tenants=tuple(tenant or ()), labelers=tuple(labeler or ()),
                          stages=tuple(stage) if stage else Selection().stages, levels=tuple(level or ()),
                          since=since, until=until)
    try:
        version = run_training(
            _settings(), use_ray=ray, steps=steps, selection=selection, incremental=incremental, resume=resume,
            split=split, label_scheme=scheme, layout=layout, head=head, gradient_accumulation_steps=accumulate,
            class_weighting=class_weighting, save_every=save_every, workers=workers, ray_job_id=ray_job_id,
        )
    except ValueError as exc:  # an unknown choice, named with the valid ones
        raise typer.BadParameter(str(exc)) from None
    _print_version(version)


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
def schedule(
    cron: Annotated[str | None, typer.Option(help="Cron expression, UTC (default: TACIT_SCHEDULE_CRON).")] = None,
    min_new_labels: Annotated[int | None, typer.Option(min=1, help="Retrain once this many labels arrived "
                                                       "(default: TACIT_SCHEDULE_MIN_NEW_LABELS).")] = None,
    poll: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 60.0,
    once: Annotated[bool, typer.Option(help="Check once, train if due, and exit (for an external cron).")] = False,
    ray: Annotated[bool, typer.Option("--ray/--local", help="Train as a Ray task, or in this process.")] = True,
) -> None:
    """Retrain on a cron expression and/or when enough new labels arrived; never two runs at once."""
    import logging

    from tacit.db import make_engine
    from trainer.job import run_training
    from trainer.schedule import Schedule, run_schedule

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings()
    plan = Schedule(cron or settings.schedule_cron, min_new_labels or settings.schedule_min_new_labels)
    engine = make_engine(_endpoint("postgres"))
    try:
        run_schedule(plan, engine, lambda: run_training(settings, use_ray=ray), poll_seconds=poll, once=once)
    finally:
        engine.dispose()


@models_app.command("list")
def models_list() -> None:
    """Every model version with its status and headline metrics."""
    from rich.table import Table

    from trainer.registry import list_versions

    table = Table("version", "status", "created", "promoted", "holdout qwk", "holdout ece", "pairwise")
    for version in list_versions(_registry()):
        metrics = version.metrics
        pairwise = ", ".join(f"{k[9:]} {v:.3f}" for k, v in metrics.items() if k.startswith("pairwise_"))
        table.add_row(str(version.id), version.status, f"{version.created_at:%Y-%m-%d %H:%M}",
                      f"{version.promoted_at:%Y-%m-%d %H:%M}" if version.promoted_at else "",
                      _number(metrics.get("holdout_qwk")), _number(metrics.get("holdout_ece")), pairwise)
    Console().print(table)


@models_app.command("show")
def models_show(version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """A version's artifact, every metric, its reliability table, margin curves and decision history."""
    _print_version(version, details=True)


@models_app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="Version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "promoted by hand",
) -> None:
    """Make a version the champion (the previous one is retired) and announce it."""
    from trainer import events, registry

    events.publish(_settings(), registry.promote(_registry(), version, reason=reason))
    console.print(f"version {version} is the champion")


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rolled back by hand",
) -> None:
    """Reject the champion and bring back the previous one, announced like a promotion."""
    from trainer import events, registry

    event = registry.rollback(_registry(), reason=reason)
    events.publish(_settings(), event)
    console.print(f"version {event['version']} is the champion again")


def _registry():
    from tacit.db import make_engine

    return make_engine(_endpoint("postgres"))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _print_version(version_id: int, *, details: bool = False) -> None:
    from trainer.registry import RegistryError, decisions, get_version

    engine = _registry()
    version = get_version(engine, version_id)
    if version is None:
        raise RegistryError(f"There is no model version {version_id}; `tacit models list` shows them.")
    out = Console()
    out.print(f"[bold]version {version.id}[/bold]: {version.status}, {version.artifact_uri}")
    for name, value in version.metrics.items():
        if isinstance(value, (int, float)):
            out.print(f"  {name:32s} {value:.4f}" if isinstance(value, float) else f"  {name:32s} {value}")
        elif details:
            out.print(f"  {name}:")
            for row in value:
                out.print("    " + "  ".join(f"{k} {_number(v) if isinstance(v, float) else v}" for k, v in row.items()))
    for decision in decisions(engine, version.id):
        out.print(f"  {decision.created_at:%Y-%m-%d %H:%M:%S} {decision.action}: " + "; ".join(decision.reasons))
    engine.dispose()


# ----------------------------------------------------------------------------------------------- serving


# ------------------------------------------------------------------------------------------ RLHI (issue 7)

pairs_app = typer.Typer(help="Preference pairs from users' re-attempts (RLHI).", no_args_is_help=True)
personas_app = typer.Typer(help="Extractive user personas (RLHI).", no_args_is_help=True)
export_app = typer.Typer(help="Write training data for DPO and reward-model trainers.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")
app.add_typer(personas_app, name="personas")
app.add_typer(export_app, name="export")
TenantOption = Annotated[str | None, typer.Option(help="Only this tenant (default: all).")]
PersonaOption = Annotated[bool, typer.Option(help="Include each user's persona (`tacit personas build`).")]
OutOption = Annotated[Path, typer.Option(help="Output file, .jsonl or .parquet.")]


@pairs_app.command("build")
def pairs_build(tenant: TenantOption = None) -> None:
    """Derive re-attempt pairs (corrected reply vs. the accepted retry) from the labels; idempotent."""
    from rlhi.pairs import build_pairs

    console.print(f"{build_pairs(_registry(), tenant)} re-attempt pairs stored")


@personas_app.command("build")
def personas_build(tenant: TenantOption = None) -> None:
    """Rebuild the persona of every user with a known id from their history; idempotent."""
    from rlhi.personas import build_personas

    console.print(f"{build_personas(_registry(), tenant)} personas stored")


@export_app.command("dpo")
def export_dpo(out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """Preference pairs as prompt / chosen / rejected messages, the format TRL's DPOTrainer loads."""
    from rlhi.export import dpo_records, write_records

    records = dpo_records(_registry(), tenant, persona)
    write_records(records, out)
    console.print(f"{len(records)} pairs written to {out}")


@export_app.command("rm")
def export_rm(out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """WildFB-style items: text in the WildReward layout, label = ordinal class of levels 1, 2, 4, 5."""
    from rlhi.export import rm_records, write_records

    records = rm_records(_registry(), tenant, persona)
    write_records(records, out)
    console.print(f"{len(records)} items written to {out}")


@app.command()
def serve(
    version: Annotated[int | None, typer.Option(help="Model version to serve (default: the champion).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                    help="Serve this checkpoint directory instead.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_SERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_SERVE_PORT).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray Serve deployment (TACIT_SERVE_RAY_*).")] = False,
) -> None:
    """Serve reward scores over HTTP: POST /v1/score, /v1/compare and the WildReward-compatible
    POST /get_reward; serving the champion follows its promotions (hot swap)."""
    from serving.server import serve as run_server

    run_server(_settings(), version=version, checkpoint=checkpoint, host=host, port=port, on_ray=ray)


@app.command()
def score(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to score (already in the model's layout).")] = None,
    pairs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="HH-RLHF preference file: print pairwise accuracy.")] = None,
    url: Annotated[str | None, typer.Option(help="Scoring service (default: http://TACIT_SERVE_HOST:PORT).")] = None,
) -> None:
    """Score texts, or a preference file's pairs, with a running scoring service."""
    from serving.client import ScoringClient

    settings = _settings()
    base_url = url or f"http://{settings.serve_host}:{settings.serve_port}"
    if not texts and pairs is None:
        raise typer.BadParameter("give texts to score, or --pairs FILE")
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    with ScoringClient(base_url, api_key=api_key) as client:
        if pairs is not None:
            from trainer.evaluate import load_hh_pairs, pairwise_accuracy

            loaded = load_hh_pairs(pairs)
            accuracy = pairwise_accuracy(client.get_reward, loaded)
            typer.echo(f"pairwise accuracy {accuracy:.4f} on {len(loaded)} pairs")
        if texts:
            for text, reward in zip(texts, client.get_reward(texts), strict=True):
                typer.echo(f"{reward:.4f}\t{text}")


# -------------------------------------------------------------------------------------------- whole system


@app.command()
def demo(
    limit: Annotated[int | None, typer.Option(min=1, help="Replay only this many conversations.")] = None,
) -> None:
    """Run the whole pipeline once on the embedded stack and the bundled chat logs, then print a summary."""
    from tacit import demo as demo_module

    demo_module.run(_settings(), console, limit=limit)


@app.command()
def up() -> None:
    """Run the platform on the embedded stack (worker, and scoring once a model exists) until Ctrl-C."""
    from tacit import platform

    platform.run(_settings(), console)
