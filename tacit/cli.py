"""The ``tacit`` command line.

The CLI (with :mod:`tacit.devstack.demo`) is where the stages are composed; every stage import is inside its
command so that ``tacit --help`` stays fast and the core modules of ``tacit`` never depend on a stage.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tacit.core.endpoints import endpoint
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings, get_settings
from tacit.devstack import stack

if TYPE_CHECKING:
    from tacit.trainer.diversity import UserDistribution

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
    return endpoint(_settings(), component)


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
    from tacit.core import db

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

    from tacit.ingest.replay import ReplayOptions
    from tacit.ingest.replay import replay as replay_file

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
    from tacit.ingest.app import run_worker

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
    from tacit.core import apikeys

    stored, key = apikeys.create(_registry(), tenant, name)
    console.print(f"key {stored.id} of tenant {stored.tenant}; keep it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None) -> None:
    """Every key's id, tenant, name and dates; never the keys themselves."""
    from rich.table import Table

    from tacit.core import apikeys

    table = Table("id", "tenant", "name", "created", "revoked")
    for key in apikeys.list_keys(_registry(), tenant):
        table.add_row(key.id, key.tenant, key.name or "", f"{key.created_at:%Y-%m-%d %H:%M}",
                      f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `tacit keys list`).")]) -> None:
    """Revoke a key: refused everywhere within TACIT_API_KEY_CACHE_S seconds."""
    from tacit.core import apikeys

    key = apikeys.revoke(_registry(), key_id)
    console.print(f"key {key.id} of tenant {key.tenant} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S}")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address (default: TACIT_GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: TACIT_GATEWAY_PORT).")] = None,
) -> None:
    """Take chat events over HTTP (POST /v1/events with a tenant's API key) and put them on Kafka."""
    from tacit.ingest.gateway import run

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
    from tacit.labels import get_labeler
    from tacit.labels.datasets import load_items
    from tacit.labels.embedding import load_encoder
    from tacit.labels.fitting import fit

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
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate a random sample of this many items, the "
                                              "same each run (for slow labelers).")] = None,
) -> None:
    """Compare a labeler with human labels: per-level precision/recall, confusion matrix, ROC-AUC, items/s."""
    from tacit.labels import get_labeler
    from tacit.labels.evaluation import evaluate, format_report, read_items

    report = evaluate(get_labeler(labeler, _settings()), read_items(data, format_name, limit))
    print(format_report(report))


@app.command()
def relabel(
    labeler: Annotated[str | None, typer.Option(help="Labeler to use (default: TACIT_LABELER).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's conversations.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only conversations seen since then (ISO time).")] = None,
) -> None:
    """Derive the labels again (raw, refined, filtered, pending) from the stored messages; safe to run twice."""
    from rich.progress import Progress

    from tacit.core.db import make_engine
    from tacit.ingest.relabel import Scope, count_conversations
    from tacit.ingest.relabel import relabel as run_relabel
    from tacit.labels import get_labeler
    from tacit.refine.mining import Miner
    from tacit.refine.pipeline import get_validator

    settings = _settings()
    engine = make_engine(_endpoint("postgres"))
    scope = Scope(tenant, since)
    chosen = get_labeler(labeler or settings.labeler, settings)
    with Progress(console=console) as progress:
        task = progress.add_task("conversations", total=count_conversations(engine, scope))
        written = run_relabel(engine, chosen, scope, settings.conversation_window, Miner.from_settings(settings),
                              get_validator(settings), on_chunk=lambda done: progress.advance(task, done))
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
        from tacit.trainer.submit import submit_training

        _print_version(submit_training(_settings(), _given_options(ctx, leave_out="ray_job"),
                                       echo=lambda text: typer.echo(text, nl=False)))
        return
    from tacit.core.examples import Selection
    from tacit.trainer.job import run_training

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

    from tacit.core.db import make_engine
    from tacit.trainer.job import run_training
    from tacit.trainer.schedule import Schedule, run_schedule

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

    from tacit.core.registry import list_versions

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
    from tacit.core import registry

    registry.promote(_registry(), version, reason=reason, settings=_settings())
    console.print(f"version {version} is the champion")


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rolled back by hand",
) -> None:
    """Reject the champion and bring back the previous one, announced like a promotion."""
    from tacit.core import registry

    event = registry.rollback(_registry(), reason=reason, settings=_settings())
    console.print(f"version {event['version']} is the champion again")


def _registry():
    from tacit.core.db import make_engine

    return make_engine(_endpoint("postgres"))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _print_version(version_id: int, *, details: bool = False) -> None:
    from tacit.core.registry import RegistryError, decisions, get_version

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
personas_app = typer.Typer(help="User personas (RLHI): extractive, or summarised by an LLM.", no_args_is_help=True)
export_app = typer.Typer(help="Write training data for DPO and reward-model trainers.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")
app.add_typer(personas_app, name="personas")
app.add_typer(export_app, name="export")
dpo_app = typer.Typer(help="Train a local policy with DPO on pairs ranked by the reward model.",
                      no_args_is_help=True)
app.add_typer(dpo_app, name="dpo")
TenantOption = Annotated[str | None, typer.Option(help="Only this tenant (default: all).")]
PersonaOption = Annotated[bool, typer.Option(help="Include each user's persona (`tacit personas build`).")]
OutOption = Annotated[Path, typer.Option(help="Output file, .jsonl or .parquet.")]
MarginOption = Annotated[float | None, typer.Option(min=0, help="Least reward gap of a pair (default: "
                                                    "TACIT_RANK_MARGIN); closer replies are ties, left out.")]
ScoringUrlOption = Annotated[str | None, typer.Option(help="Scoring service (default: http://TACIT_SERVE_HOST:PORT).")]


def _margin(margin: float | None) -> float:
    return _settings().rank_margin if margin is None else margin


def _scoring_client(url: str | None):
    """A client of the running scoring service, with the key TACIT_API_KEY."""
    from tacit.model.client import ScoringClient

    settings = _settings()
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return ScoringClient(url or f"http://{settings.serve_host}:{settings.serve_port}", api_key=api_key)


@pairs_app.command("build")
def pairs_build(tenant: TenantOption = None) -> None:
    """Derive re-attempt pairs (corrected reply vs. the accepted retry) from the labels; idempotent."""
    from tacit.rlhi.pairs import build_pairs

    console.print(f"{build_pairs(_registry(), tenant)} re-attempt pairs stored")


@pairs_app.command("rank")
def pairs_rank(
    tenant: TenantOption = None,
    margin: MarginOption = None,
    url: ScoringUrlOption = None,
) -> None:
    """Pairs ranked by the running scoring service: among stored replies to the same prompt (regenerations,
    branches, the same question in other conversations), the best against the worst; idempotent."""
    from tacit.rlhi.ranking import rank, store_pairs, stored_groups

    engine = _registry()
    groups = [group for group in stored_groups(engine, tenant) if len(group.candidates) >= 2]
    console.print(f"{len(groups)} prompts with several replies")
    with _scoring_client(url) as client:
        stored = store_pairs(engine, rank(client, groups, _margin(margin)))
    console.print(f"{stored} reward-model pairs stored")


class PersonaMethod(str, Enum):
    extractive = "extractive"
    llm = "llm"


@personas_app.command("build")
def personas_build(
    tenant: TenantOption = None,
    method: Annotated[PersonaMethod, typer.Option(help="extractive, or llm: the LLM at TACIT_LLM_URL rewrites "
                                                  "each extractive persona as a few sentences.")] = "extractive",
    if_older_than: Annotated[float | None, typer.Option(min=0, help="Hours: rebuild only when the oldest persona is "
                                                        "older (or none exists), so cron can call it often.")] = None,
) -> None:
    """Rebuild the persona of every user with a known id from their history; idempotent."""
    from datetime import timedelta

    from tacit.rlhi.personas import build_personas, refresh_due

    engine = _registry()
    if if_older_than is not None and not refresh_due(engine, tenant, timedelta(hours=if_older_than)):
        console.print(f"personas are younger than {if_older_than:g} h: nothing to rebuild")
        return
    summariser = None
    if method is PersonaMethod.llm:
        from tacit.rlhi.persona_summary import PersonaSummariser

        summariser = PersonaSummariser.from_settings(_settings())
    console.print(f"{build_personas(engine, tenant, summariser=summariser)} personas stored ({method.value})")


@dpo_app.command("online")
def dpo_online(
    out: Annotated[Path, typer.Option(help="Directory to save the trained policy in.")],
    prompts: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="JSONL of prompts: "
                       "{\"prompt\": [messages] or text}, e.g. from `tacit export dpo`; default: stored prompts.")] = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Most prompts to sample for.")] = 16,
    candidates: Annotated[int, typer.Option(min=2, help="Replies sampled per prompt.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest sampled reply, in tokens.")] = 64,
    steps: Annotated[int, typer.Option(min=1, help="DPO optimizer steps.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per DPO step.")] = 2,
    policy: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Policy checkpoint, e.g. an "
                      "earlier run's --out (default: the bundled SmolLM2-135M-Instruct).")] = None,
    margin: MarginOption = None,
    url: ScoringUrlOption = None,
) -> None:
    """Sample replies from a local policy, rank them with the running scoring service, store the
    best-versus-worst pairs and train the policy on them with TRL's DPOTrainer."""
    from tacit.rlhi.online_dpo import SOURCE, OnlineDPOConfig, prompts_from_file, run_online_dpo
    from tacit.rlhi.ranking import store_pairs, stored_groups

    settings = _settings()
    engine = _registry()
    groups = (prompts_from_file(prompts, tenant or settings.default_tenant) if prompts is not None
              else stored_groups(engine, tenant))[:limit]
    if not groups:
        raise TacitError("No prompts: pass --prompts FILE, or store conversations first (`tacit replay`).")
    config = OnlineDPOConfig(out, policy, candidates, max_new_tokens, steps, batch_size, margin=_margin(margin))
    with _scoring_client(url) as client:
        pairs = run_online_dpo(config, groups, client, settings.precision, report=console.print)
    console.print(f"{store_pairs(engine, pairs, SOURCE)} online-DPO pairs stored")


@export_app.command("dpo")
def export_dpo(out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """Preference pairs as prompt / chosen / rejected messages, the format TRL's DPOTrainer loads."""
    from tacit.rlhi.export import dpo_records, write_records

    records = dpo_records(_registry(), tenant, persona)
    write_records(records, out)
    console.print(f"{len(records)} pairs written to {out}")


@export_app.command("rm")
def export_rm(out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """WildFB-style items: text in the WildReward layout, label = ordinal class of levels 1, 2, 4, 5."""
    from tacit.rlhi.export import rm_records, write_records

    records = rm_records(_registry(), tenant, persona)
    write_records(records, out)
    console.print(f"{len(records)} items written to {out}")


# -------------------------------------------------------------------------------------- analysis (issue 7)

analyze_app = typer.Typer(help="Analyses of the labeled data in the store.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


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

    engine = _registry()
    examples = load_examples(engine, Selection(tenants=(tenant,) if tenant else ()))
    engine.dispose()
    out_console = Console()
    _print_user_distribution(out_console, UserDistribution.of(examples))
    config = DiversityConfig(subset_size, _user_counts(user_counts), seeds, steps)
    experiment = user_diversity(examples, _settings(), config, on_run=lambda run: console.print(
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
    if ray:
        from tacit.serving.ray_app import serve_on_ray as run_server
    else:
        from tacit.serving.server import serve as run_server
    run_server(_settings(), version=version, checkpoint=checkpoint, host=host, port=port)


@app.command()
def score(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to score (already in the model's layout).")] = None,
    pairs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="HH-RLHF preference file: print pairwise accuracy.")] = None,
    url: ScoringUrlOption = None,
) -> None:
    """Score texts, or a preference file's pairs, with a running scoring service."""
    if not texts and pairs is None:
        raise typer.BadParameter("give texts to score, or --pairs FILE")
    with _scoring_client(url) as client:
        if pairs is not None:
            from tacit.trainer.evaluate import load_hh_pairs, pairwise_accuracy

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
    from tacit.devstack import demo as demo_module

    demo_module.run(_settings(), console, limit=limit)


@app.command()
def up() -> None:
    """Run the platform on the embedded stack (worker, and scoring once a model exists) until Ctrl-C."""
    from tacit.devstack import platform

    platform.run(_settings(), console)
