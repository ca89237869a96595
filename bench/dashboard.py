"""The dashboard's queries on a store of 1 million labels: each panel's time without and with the indexes of
migration 0007, measured in one run on a private embedded PostgreSQL.

    python bench/dashboard.py [--labels 1000000] [--runs 5]

The store is generated inside PostgreSQL (``generate_series``): one tenant, a year of replies of four
assistant models, one follow-up each, rated once raw and once derived (levels in the proportions of real
follow-ups: 3% rejections, 14% corrections, 76% neutral, 6% positive, 1% satisfied; 8% filtered, a third of
the positive ones mined), and 10,000 dead letters. Each panel's query runs once to warm the cache, then
``--runs`` times; the median is printed. The panels show their default range (the last 30 days); the
satisfaction alert reads the last 2 x 24 hours.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from tacit.core import db
from tacit.core.db import make_engine
from tacit.core.settings import TacitSettings
from tacit.dashboard import alerts, queries
from tacit.dashboard.queries import Window
from tacit.devstack import stack

TENANT = "bench"
BEFORE_INDEXES = "0005"

MESSAGES = """
INSERT INTO messages (event_id, tenant, conversation_id, turn_index, role, content, user_id, assistant_model,
                      metadata, created_at, ingested_at)
SELECT 'e' || g || '-' || t, :tenant, 'c' || g, t, CASE t WHEN 1 THEN 'assistant' ELSE 'user' END,
       CASE t WHEN 1 THEN 'Here is how to do it, step ' || g ELSE 'That is wrong, you forgot step ' || g END,
       'u' || (g % 50000), CASE t WHEN 1 THEN 'model-' || (g % 4) END, '{}', at, at + interval '1 second'
FROM generate_series(1, :n) AS g, (VALUES (1), (2)) AS turns(t),
     LATERAL (SELECT now() - ((:n - g)::float / :n) * interval '365 days' + t * interval '1 minute' AS at) AS times
"""

FEEDBACK = """
INSERT INTO feedback (tenant, conversation_id, user_id, query_turn, response_turn, followup_turn, level, confidence,
                      reason, labeler_id, labeler_version, stage, created_at, updated_at)
SELECT :tenant, 'c' || g, 'u' || (g % 50000), 0, 1, 2, level, 0.9,
       CASE WHEN stage = 'filtered' THEN 'filtered: ' || (ARRAY['image generation', 'web search', 'short reply',
                                                                'personal data'])[1 + g % 4] || '; rules'
            WHEN stage = 'refined' AND level >= 4 AND g % 3 = 0
                 THEN 'mined: follow-up at turn 4 is level ' || level || ', cosine 0.71; rules'
            ELSE 'rules' END,
       'rules', CASE WHEN g > :n / 2 THEN '2' ELSE '1' END, stage, at, at
FROM (SELECT g, now() - ((:n - g)::float / :n) * interval '365 days' + interval '3 minutes' AS at,
             CASE WHEN r < 3 THEN 1 WHEN r < 17 THEN 2 WHEN r < 93 THEN 3 WHEN r < 99 THEN 4 ELSE 5 END AS level,
             CASE WHEN (g::bigint * 7919) % 100 < 8 THEN 'filtered' ELSE 'refined' END AS derived
      FROM generate_series(1, :n) AS g, LATERAL (SELECT (g * 2654435761) % 100 AS r) AS hashed) AS items,
     LATERAL (VALUES ('raw'), (derived)) AS stages(stage)
"""

DEAD_LETTERS = """
INSERT INTO rejected_events (topic, partition, "offset", payload, reason, created_at)
SELECT 'chat-events', g % 2, g, '{broken', (ARRAY['not JSON', 'invalid event: role', 'too large'])[1 + g % 3],
       now() - (g % 1440) * interval '1 minute'
FROM generate_series(1, 10000) AS g
"""


def fill(engine: Engine, labels: int) -> float:
    """Seconds to generate the store."""
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in (MESSAGES, FEEDBACK, DEAD_LETTERS):
            conn.execute(text(statement), {"tenant": TENANT, "n": labels})
    analyze(engine)
    return time.perf_counter() - started


def analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages, feedback, rejected_events"))


def panels(now: datetime) -> dict[str, Callable[[Connection], object]]:
    """Each panel's query, as the dashboard runs it on a page with its default range."""
    month = Window(TENANT, now - timedelta(days=30), now)
    settings = TacitSettings()
    return {
        "satisfaction over time, all models": lambda c: queries.satisfaction_daily(c, month),
        "satisfaction over time, one model": lambda c: queries.satisfaction_daily(
            c, Window(TENANT, month.start, month.end, "model-1")),
        "label mix per labeler version": lambda c: queries.label_mix(c, month),
        "filtered and mined by reason": lambda c: queries.refinement_reasons(c, month),
        "dissatisfied follow-ups, newest page": lambda c: queries.dissatisfied_followups(c, TENANT),
        "dissatisfied follow-ups, a page back": lambda c: queries.dissatisfied_followups(c, TENANT, before=500_000),
        "dissatisfied follow-ups, one model": lambda c: queries.dissatisfied_followups(c, TENANT, model="model-3"),
        "satisfaction alerts (2 x 24 h)": lambda c: alerts.check(c, TENANT, now, settings),
        "dead letters by reason (1 day)": lambda c: queries.dead_letters(c, now - timedelta(days=1)),
        "messages stored (5 minutes)": lambda c: queries.messages_stored(c, TENANT, now - timedelta(minutes=5)),
    }


def median_ms(engine: Engine, query: Callable[[Connection], object], runs: int) -> float:
    with engine.connect() as conn:
        query(conn)  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            query(conn)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def timings(engine: Engine, runs: int) -> dict[str, float]:
    return {name: median_ms(engine, query, runs) for name, query in panels(datetime.now(UTC)).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tacit-bench-dashboard-") as data_dir:
        settings = TacitSettings(data_dir=Path(data_dir), ray_address="not-used:1")  # no Ray: only SQL is timed
        try:
            url = stack.up(settings, report=lambda line: None).database_url
            command.downgrade(db.alembic_config(url), BEFORE_INDEXES)
            engine = make_engine(url)
            generated = fill(engine, args.labels)
            without = timings(engine, args.runs)
            started = time.perf_counter()
            db.upgrade(url)
            indexed = time.perf_counter() - started
            analyze(engine)
            with_indexes = timings(engine, args.runs)
            engine.dispose()
        finally:
            stack.down(settings, report=lambda line: None)
    print(f"{args.labels} labels (and as many raw rows, {2 * args.labels} messages): generated in {generated:.0f}s; "
          f"migration 0007 built its indexes in {indexed:.1f}s")
    print(f"{'panel (median of ' + str(args.runs) + ' runs)':45} {'without 0007':>14} {'with 0007':>12}")
    for name, before in without.items():
        print(f"{name:45} {before:11.1f} ms {with_indexes[name]:9.1f} ms")


if __name__ == "__main__":
    main()
