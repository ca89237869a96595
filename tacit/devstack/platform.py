"""``tacit up``: the platform running continuously on the embedded stack until interrupted.

Starts the stack (what is not running yet), a stream worker, the ingest gateway, the retraining schedule
(`tacit schedule`: a run once TACIT_SCHEDULE_MIN_NEW_LABELS new labels arrived, or on TACIT_SCHEDULE_CRON),
the dashboard and, as soon as a champion model exists, the scoring service, so the loop from chat logs to a served model
closes by itself; restarts a child that dies; on Ctrl-C stops its children and the stack components that it
started itself, leaving alone what was already running.
"""

from __future__ import annotations

import signal
import subprocess
import time
from contextlib import ExitStack

from rich.console import Console
from sqlalchemy import select

from tacit.core.db import ModelStatus, ModelVersion, make_engine
from tacit.core.endpoints import COMPONENTS, read_state
from tacit.core.settings import TacitSettings
from tacit.devstack import stack
from tacit.devstack.processes import log_tail, stop, tacit_child

POLL_S = 5.0
ALWAYS_ON = ("worker", "gateway", "schedule", "dashboard")  # the scoring service joins once a champion exists


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (systemd, Docker, Kubernetes) stops everything as Ctrl-C does


def run(settings: TacitSettings, console: Console) -> None:
    """Until Ctrl-C or SIGTERM; then every child gets SIGTERM at once (the gateway stops intake, the worker
    drains its batch), each is waited for (killed after a timeout), then the stack components this run
    started are stopped: bounded by the slowest child, not the sum."""
    signal.signal(signal.SIGTERM, _interrupt)
    # A parent that ignores SIGINT (nohup, some supervisors, a test runner) passes that on, and Python then
    # leaves Ctrl-C ignored: stopping on it is this command's contract, so its handler is set explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    already_running = {name for name, record in read_state(settings).items() if record.alive()}
    endpoints = stack.up(settings, report=console.print)
    logs = settings.data_dir / "logs"
    children: dict[str, subprocess.Popen] = {}
    try:
        with ExitStack() as exits:
            def start(name: str, *args: str) -> None:
                children[name] = exits.enter_context(tacit_child(settings, *args, log=logs / f"{name}.log"))
                console.print(f"{name}: started (pid {children[name].pid}, log {logs / f'{name}.log'})")

            console.print(f"send chat events to {endpoints.kafka_bootstrap} topic '{settings.chat_events_topic}' "
                          f"(e.g. `tacit replay FILE`) or to http://{settings.gateway_host}:{settings.gateway_port}"
                          "/v1/events with a tenant's key (`tacit keys create`); see them at "
                          f"http://{settings.dashboard_host}:{settings.dashboard_port}; Ctrl-C stops")
            engine = make_engine(endpoints.database_url)
            try:
                _supervise(settings, console, engine, children, start)
            except BaseException:
                _terminate(children)  # every child stops at once; each exit below then waits for its own
                raise
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        started_here = set(COMPONENTS) - already_running
        if started_here == set(COMPONENTS):
            stack.down(settings, report=console.print)
        else:
            console.print("the embedded stack was already running; left running (`tacit stack down` stops it)")


def _supervise(settings: TacitSettings, console: Console, engine, children: dict[str, subprocess.Popen],
               start) -> None:
    """Forever: start what is missing (the scoring service once a champion exists), restart what died."""
    logs = settings.data_dir / "logs"
    while True:
        for name in ALWAYS_ON:
            if name not in children:
                start(name, name)
        if "serve" not in children and _has_champion(engine):
            start("serve", "serve")
            console.print(f"scoring at http://{settings.serve_host}:{settings.serve_port}")
        for name, proc in list(children.items()):
            if proc.poll() is not None:  # started again on the next round
                console.print(f"[red]{name} exited ({proc.returncode}); restarting. Log tail:[/red]\n"
                              f"{log_tail(logs / f'{name}.log', 1500)}")
                stop(proc)
                del children[name]
        time.sleep(POLL_S)


def _terminate(children: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every child at once, so that stopping takes as long as the slowest child, not the sum of
    them; each child's own exit then waits for it (and kills it if it does not stop in time)."""
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)


def _has_champion(engine) -> bool:
    """A global champion: the service starts with it (a tenant's own champion alone is not enough)."""
    with engine.connect() as conn:
        query = select(ModelVersion.id).where(ModelVersion.status == ModelStatus.CHAMPION.value,
                                              ModelVersion.tenant.is_(None)).limit(1)
        return conn.execute(query).first() is not None
