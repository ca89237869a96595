"""Export stored training data to files other trainers read as is.

``dpo`` writes TRL's conversational preference format: ``prompt`` is a list of ``{role, content}``
messages and ``chosen`` / ``rejected`` are one-message assistant lists, so ``DPOTrainer`` applies the
policy's own chat template. ``rm`` writes WildFB-style pointwise items: the text in the WildReward layout
and its ordinal class. With a persona, the user's profile becomes a system message (DPO) or the persona
section of the layout (RM), as RLHI's persona-conditioned training does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tacit.core.db import PersonaRow, PreferencePairRow
from tacit.core.errors import TacitError
from tacit.core.examples import Selection, label_scheme, load_examples
from tacit.core.fusion import FusionRule
from tacit.model.layouts import render

Record = dict[str, Any]


def dpo_records(engine: Engine, tenant: str | None = None, persona: bool = False) -> list[Record]:
    statement = select(PreferencePairRow).order_by(PreferencePairRow.id)
    if tenant is not None:
        statement = statement.where(PreferencePairRow.tenant == tenant)
    with engine.connect() as connection:
        pairs = connection.execute(statement).all()
    personas = _personas(engine, tenant) if persona else {}
    return [
        {
            "prompt": _persona_message(personas.get((pair.tenant, pair.user_id))) + list(pair.prompt),
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        for pair in pairs
    ]


def rm_records(engine: Engine, tenant: str | None = None, persona: bool = False,
               fusion: FusionRule | None = None) -> list[Record]:
    """Items for other reward-model trainers; with ``fusion``, levels fused with signals as Tacit trains."""
    scheme = label_scheme("wildfb")
    examples = load_examples(engine, Selection(tenants=(tenant,) if tenant else ()), fusion)
    personas = _personas(engine, tenant) if persona else {}
    return [
        {
            "text": render(example.history, example.query, example.response, layout="wildreward",
                           persona=personas.get((example.tenant, example.user_id))),
            "label": scheme.to_class(example.level),
            "level": example.level,
        }
        for example in examples
        if scheme.keeps(example)
    ]


def write_records(records: Sequence[Record], out: Path) -> None:
    """JSON lines or Parquet, chosen by the file's suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        with out.open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    elif out.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(list(records)), out)
    else:
        raise TacitError(f"Cannot write {out}: name the output file .jsonl or .parquet.")


def _personas(engine: Engine, tenant: str | None) -> dict[tuple[str, str], str]:
    statement = select(PersonaRow.tenant, PersonaRow.user_id, PersonaRow.summary)
    if tenant is not None:
        statement = statement.where(PersonaRow.tenant == tenant)
    with engine.connect() as connection:
        return {(row.tenant, row.user_id): row.summary for row in connection.execute(statement) if row.summary}


def _persona_message(summary: str | None) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"User persona:\n{summary}"}] if summary else []
