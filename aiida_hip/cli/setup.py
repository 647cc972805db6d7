"""``aiida-hip setup``: the AiiDA profile (SQLite + ZeroMQ, or PostgreSQL + RabbitMQ), the computers and
the worker code."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import psycopg
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.manage.configuration import get_config, reset_config
from psycopg import sql

from .options import CODE_LABEL
from .profile import open_profile

CACHED = "aiida.calculations:hip.*"


def ensure_profile(name: str, caching: bool = True, production: bool = False) -> str:
    """Create the profile unless it exists: embedded (SQLite storage, ZeroMQ broker inside the daemon)
    or, with ``production``, PostgreSQL storage and the RabbitMQ broker (both must be running)."""
    try:
        existing = get_config(create=True).profile_names
    except Exception:
        existing = []
    created = name not in existing
    if created:
        command = _profile_command(name, production)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise click.ClickException(f"`verdi {command[1]}` failed:\n{done.stdout}\n{done.stderr}")
        kind = "PostgreSQL storage, RabbitMQ broker" if production else "SQLite storage, ZeroMQ broker in the daemon"
        click.echo(f"created AiiDA profile {name!r} ({kind})")
        reset_config()
    config = get_config()
    if created and production:
        # `verdi run` and `aiida-hip submit` without --daemon run in a local runner with no broker
        # connection: it learns that a child finished only by polling, every `runner.poll.interval`
        # (60 s by default; `verdi presto` sets 1 s for the embedded profile, so do we)
        config.set_option("runner.poll.interval", 1, scope=name)
    if caching:
        config.set_option("caching.enabled_for", [CACHED], scope=name)
    config.store()
    return name


def _profile_command(name: str, production: bool) -> list[str]:
    """The ``verdi`` command line that creates profile ``name`` (for production: its database first)."""
    verdi = Path(sys.executable).with_name("verdi")
    if not production:
        return [str(verdi), "presto", "--profile-name", name, "--non-interactive", "--use-zeromq"]
    _require_rabbitmq()
    command = [str(verdi), "profile", "setup", "core.psql_dos", "--non-interactive", "--profile-name", name]
    command += [f"--{key}={value}" for key, value in _postgres_database(name).items()]
    command += ["--broker", "core.rabbitmq", "--email", f"{name}@localhost", "--first-name", "aiida-hip"]
    command += ["--last-name", "user", "--institution", "aiida-hip", "--no-set-as-default"]
    repository = Path(get_config().dirpath) / "repository" / name
    command += ["--repository-uri", repository.as_uri()]
    return command


def _postgres_database(name: str, host: str = "127.0.0.1", port: int = 5432) -> dict:
    """A PostgreSQL role and database named after the profile (the server's own locale, which
    ``verdi presto --use-postgres`` gets wrong where en_US.UTF-8 is missing); connects as ``postgres``."""
    password = secrets.token_hex(12)
    try:
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as db:
            exists = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            db.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
            if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                db.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                        sql.Identifier(name), sql.Identifier(name)
                    )
                )
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot create the PostgreSQL database {name!r} at {host}:{port}: {exc}") from exc
    return {
        "database-hostname": host,
        "database-port": port,
        "database-username": name,
        "database-password": password,
        "database-name": name,
    }


def drop_postgres_database(name: str, host: str = "127.0.0.1", port: int = 5432) -> None:
    """Drop the database and role :func:`_postgres_database` made (for throw-away test/benchmark profiles)."""
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _require_rabbitmq(host: str = "127.0.0.1", port: int = 5672) -> None:
    """``verdi presto`` silently falls back to ZeroMQ without RabbitMQ: a production profile must not."""
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        raise click.ClickException(
            f"RabbitMQ at {host}:{port} is not reachable ({exc}): start it (rabbitmq-server -detached)"
        ) from exc


def ensure_code(
    worker: str | None = None,
    computer_label: str = "localhost",
    scheduler: str = "core.direct",
    workdir: str | None = None,
):
    """The ``hip-worker@<computer>`` code running this environment's ``aiida-hip-worker``; the computer
    (``core.local`` transport, ``scheduler`` core.direct or core.slurm) is created if missing."""
    try:
        computer = orm.load_computer(computer_label)
    except NotExistent:
        computer = orm.Computer(
            label=computer_label,
            hostname="localhost",
            transport_type="core.local",
            scheduler_type=scheduler,
            workdir=workdir or str(Path(tempfile.gettempdir()) / f"aiida-hip-work-{computer_label}"),
        ).store()
        # no login shell: `bash -l` costs 0.15 s of CPU for every scheduler command (each poll, submission,
        # job-info query) against 0.01 s; the worker is called by its absolute path and needs no profile
        computer.configure(use_login_shell=False)
    # both computers are on this machine (core.local): a `ps` or an `squeue` answered by the local slurmctld
    # costs milliseconds, so poll often and notice a finished job at once (half the interval on average)
    computer.set_minimum_job_poll_interval(0.1 if computer.scheduler_type == "core.direct" else 0.2)
    path = Path(worker) if worker else Path(sys.executable).with_name("aiida-hip-worker")
    if not path.is_file():
        raise click.ClickException(f"aiida-hip-worker not found at {path}; install the package (pip install -e .)")
    try:
        code = orm.load_code(f"{CODE_LABEL}@{computer_label}")
        if str(code.filepath_executable) != str(path):
            click.echo(f"note: {CODE_LABEL}@{computer_label} runs {code.filepath_executable}, not {path}")
        return code
    except NotExistent:
        code = orm.InstalledCode(
            label=CODE_LABEL,
            computer=computer,
            filepath_executable=str(path),
            default_calc_job_plugin="hip.opt",
            description="aiida-hip worker: runs pipeline stages for the reactions of a CalcJob",
        )
        return code.store()


@click.command("setup")
@click.option("--profile", "profile_name", default="aiida-hip", show_default=True, help="Profile to create or use.")
@click.option("--worker", default=None, help="Path of aiida-hip-worker (default: beside this Python).")
@click.option("--caching/--no-caching", default=True, show_default=True, help="AiiDA caching for hip.* CalcJobs.")
@click.option(
    "--production",
    is_flag=True,
    help="PostgreSQL (127.0.0.1:5432) storage + RabbitMQ (127.0.0.1:5672) broker instead of SQLite + ZeroMQ.",
)
@click.option(
    "--slurm",
    "slurm_computer",
    default=None,
    metavar="LABEL",
    help="Also a computer LABEL with the core.slurm scheduler on this machine, and hip-worker@LABEL.",
)
def setup_cmd(profile_name: str, worker: str | None, caching: bool, production: bool, slurm_computer) -> None:
    """Create the AiiDA profile (if missing), the localhost computer and the worker code."""
    name = ensure_profile(profile_name, caching, production)
    open_profile(name)
    code = ensure_code(worker)
    click.echo(f"profile {name!r}: code {code.full_label} (pk {code.pk}) -> {code.filepath_executable}")
    if slurm_computer:
        code = ensure_code(worker, slurm_computer, scheduler="core.slurm")
        click.echo(f"profile {name!r}: code {code.full_label} (pk {code.pk}) through SLURM")
