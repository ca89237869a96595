"""The RLHI commands: the ``pairs``, ``personas``, ``export`` and ``dpo`` groups."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tacit.core.cli import TenantOption, console, wiring
from tacit.core.errors import TacitError
from tacit.core.settings import TacitSettings
from tacit.model.cli import ScoringUrlOption, scoring_client

app = typer.Typer()
pairs_app = typer.Typer(help="Preference pairs from users' re-attempts (RLHI).", no_args_is_help=True)
personas_app = typer.Typer(help="User personas (RLHI): extractive, or summarised by an LLM.", no_args_is_help=True)
export_app = typer.Typer(help="Write training data for DPO and reward-model trainers.", no_args_is_help=True)
dpo_app = typer.Typer(help="Train a local policy with DPO on pairs ranked by the reward model.",
                      no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")
app.add_typer(personas_app, name="personas")
app.add_typer(export_app, name="export")
app.add_typer(dpo_app, name="dpo")

PersonaOption = Annotated[bool, typer.Option(help="Include each user's persona (`tacit personas build`).")]
OutOption = Annotated[Path, typer.Option(help="Output file, .jsonl or .parquet.")]
MarginOption = Annotated[float | None, typer.Option(min=0, help="Least reward gap of a pair (default: "
                                                    "TACIT_RANK_MARGIN); closer replies are ties, left out.")]


def _margin(settings: TacitSettings, margin: float | None) -> float:
    return settings.rank_margin if margin is None else margin


@pairs_app.command("build")
def pairs_build(ctx: typer.Context, tenant: TenantOption = None) -> None:
    """Derive re-attempt pairs (corrected reply vs. the accepted retry) from the labels, and regeneration
    pairs (regenerated reply vs. its accepted replacement) from the signals; idempotent."""
    from tacit.rlhi.pairs import build_pairs

    console.print(f"{build_pairs(wiring(ctx).engine(), tenant)} re-attempt and regeneration pairs stored")


@pairs_app.command("rank")
def pairs_rank(
    ctx: typer.Context,
    tenant: TenantOption = None,
    margin: MarginOption = None,
    url: ScoringUrlOption = None,
) -> None:
    """Pairs ranked by the running scoring service: among stored replies to the same prompt (regenerations,
    branches, the same question in other conversations), the best against the worst; idempotent."""
    from tacit.rlhi.ranking import rank, store_pairs, stored_groups

    wired = wiring(ctx)
    settings, engine = wired.settings(), wired.engine()
    groups = [group for group in stored_groups(engine, tenant) if len(group.candidates) >= 2]
    console.print(f"{len(groups)} prompts with several replies")
    with scoring_client(settings, url) as client:
        stored = store_pairs(engine, rank(client, groups, _margin(settings, margin)))
    console.print(f"{stored} reward-model pairs stored")


class PersonaMethod(str, Enum):
    extractive = "extractive"
    llm = "llm"


@personas_app.command("build")
def personas_build(
    ctx: typer.Context,
    tenant: TenantOption = None,
    method: Annotated[PersonaMethod, typer.Option(help="extractive, or llm: the LLM at TACIT_LLM_URL rewrites "
                                                  "each extractive persona as a few sentences.")] = "extractive",
    if_older_than: Annotated[float | None, typer.Option(min=0, help="Hours: rebuild only when the oldest persona is "
                                                        "older (or none exists), so cron can call it often.")] = None,
) -> None:
    """Rebuild the persona of every user with a known id from their history; idempotent."""
    from datetime import timedelta

    from tacit.rlhi.personas import build_personas, refresh_due

    wired = wiring(ctx)
    engine = wired.engine()
    if if_older_than is not None and not refresh_due(engine, tenant, timedelta(hours=if_older_than)):
        console.print(f"personas are younger than {if_older_than:g} h: nothing to rebuild")
        return
    summariser = None
    if method is PersonaMethod.llm:
        from tacit.rlhi.persona_summary import PersonaSummariser

        summariser = PersonaSummariser.from_settings(wired.settings())
    console.print(f"{build_personas(engine, tenant, summariser=summariser)} personas stored ({method.value})")


@dpo_app.command("online")
def dpo_online(
    ctx: typer.Context,
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

    wired = wiring(ctx)
    settings = wired.settings()
    engine = wired.engine()
    groups = (prompts_from_file(prompts, tenant or settings.default_tenant) if prompts is not None
              else stored_groups(engine, tenant))[:limit]
    if not groups:
        raise TacitError("No prompts: pass --prompts FILE, or store conversations first (`tacit replay`).")
    config = OnlineDPOConfig(out, policy, candidates, max_new_tokens, steps, batch_size, margin=_margin(settings, margin))
    with scoring_client(settings, url) as client:
        pairs = run_online_dpo(config, groups, client, settings.precision, report=console.print)
    console.print(f"{store_pairs(engine, pairs, SOURCE)} online-DPO pairs stored")


@export_app.command("dpo")
def export_dpo(ctx: typer.Context, out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """Preference pairs as prompt / chosen / rejected messages, the format TRL's DPOTrainer loads."""
    from tacit.rlhi.export import dpo_records, write_records

    records = dpo_records(wiring(ctx).engine(), tenant, persona)
    write_records(records, out)
    console.print(f"{len(records)} pairs written to {out}")


@export_app.command("rm")
def export_rm(ctx: typer.Context, out: OutOption, tenant: TenantOption = None, persona: PersonaOption = False) -> None:
    """WildFB-style items: text in the WildReward layout, label = ordinal class of levels 1, 2, 4, 5 (fused
    with the feedback signals, as training reads them, unless TACIT_FEEDBACK_FUSION is false)."""
    from tacit.core.fusion import FusionRule
    from tacit.rlhi.export import rm_records, write_records

    wired = wiring(ctx)
    fusion = FusionRule() if wired.settings().feedback_fusion else None
    records = rm_records(wired.engine(), tenant, persona, fusion)
    write_records(records, out)
    console.print(f"{len(records)} items written to {out}")
