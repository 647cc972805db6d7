"""``aiida-hip setup``, ``submit`` and ``reactions list|show|export``: the AiiDA side of the command line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import click

PROFILE_OPTION = click.option(
    "-p", "--profile", default=None, help="AiiDA profile (default: the default profile of AIIDA_PATH)."
)
CODE_LABEL = "hip-worker"
CACHED = "aiida.calculations:hip.*"


def _load(profile: str | None):
    from aiida import load_profile
    from aiida.common.exceptions import MissingConfigurationError, ProfileConfigurationError
    from aiida.manage import get_manager

    loaded = get_manager().get_profile()
    if loaded is not None and profile in (None, loaded.name):
        return loaded
    try:
        loaded = load_profile(profile, allow_switch=True)
    except (MissingConfigurationError, ProfileConfigurationError) as exc:
        raise click.ClickException(f"no AiiDA profile to use ({exc}); run `aiida-hip setup` first") from exc
    try:  # a database that is down fails here, in words, not later in a traceback
        get_manager().get_profile_storage()
    except Exception as exc:
        storage = loaded.storage_config
        where = f" at {storage['database_hostname']}:{storage['database_port']}" if "database_port" in storage else ""
        raise click.ClickException(
            f"cannot open the storage of profile {loaded.name!r}{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return loaded


def ensure_profile(name: str, caching: bool = True, production: bool = False) -> str:
    """Create the profile unless it exists: embedded (SQLite storage, ZeroMQ broker inside the daemon)
    or, with ``production``, PostgreSQL storage and the RabbitMQ broker (both must be running)."""
    from aiida.manage.configuration import get_config

    try:
        existing = get_config(create=True).profile_names
    except Exception:
        existing = []
    created = name not in existing
    if created:
        verdi = Path(sys.executable).with_name("verdi")
        command = [str(verdi), "presto", "--profile-name", name, "--non-interactive", "--use-zeromq"]
        if production:
            _require_rabbitmq()
            command = [str(verdi), "profile", "setup", "core.psql_dos", "--non-interactive", "--profile-name", name]
            command += [f"--{key}={value}" for key, value in _postgres_database(name).items()]
            command += ["--broker", "core.rabbitmq", "--email", f"{name}@localhost", "--first-name", "aiida-hip"]
            command += ["--last-name", "user", "--institution", "aiida-hip", "--no-set-as-default"]
            repository = Path(get_config().dirpath) / "repository" / name
            command += ["--repository-uri", repository.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise click.ClickException(f"`verdi {command[1]}` failed:\n{done.stdout}\n{done.stderr}")
        kind = "PostgreSQL storage, RabbitMQ broker" if production else "SQLite storage, ZeroMQ broker in the daemon"
        click.echo(f"created AiiDA profile {name!r} ({kind})")
        from aiida.manage.configuration import reset_config

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


def _postgres_database(name: str, host: str = "127.0.0.1", port: int = 5432) -> dict:
    """A PostgreSQL role and database named after the profile (the server's own locale, which
    ``verdi presto --use-postgres`` gets wrong where en_US.UTF-8 is missing); connects as ``postgres``."""
    import secrets

    import psycopg
    from psycopg import sql

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
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _require_rabbitmq(host: str = "127.0.0.1", port: int = 5672) -> None:
    """``verdi presto`` silently falls back to ZeroMQ without RabbitMQ: a production profile must not."""
    import socket

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
    import tempfile

    from aiida import orm
    from aiida.common.exceptions import NotExistent

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
    _load(name)
    code = ensure_code(worker)
    click.echo(f"profile {name!r}: code {code.full_label} (pk {code.pk}) -> {code.filepath_executable}")
    if slurm_computer:
        code = ensure_code(worker, slurm_computer, scheduler="core.slurm")
        click.echo(f"profile {name!r}: code {code.full_label} (pk {code.pk}) through SLURM")


@click.command("submit")
@click.argument("source", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("--from-group", default=None, help="Reactions stored in this group (extras 'reaction' and 'role').")
@PROFILE_OPTION
@click.option("--code", "code_label", default=f"{CODE_LABEL}@localhost", show_default=True)
@click.option("--protocol", type=click.Choice(["fast", "moderate", "precise"]), default="moderate", show_default=True)
@click.option("--route", type=click.Choice(["auto", "pysisyphus", "sella"]), default="auto", show_default=True)
@click.option("--calculator", type=click.Choice(["hip", "xtb"]), default="hip", show_default=True)
@click.option(
    "--hessian",
    type=click.Choice(["predicted", "autograd", "finite-difference", "reference", "none"]),
    default=None,
    help="Default: predicted with --calculator hip, reference with xtb.",
)
@click.option("--max-concurrent", default=4, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--reactions-per-job",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="1: a hip.ts_search work chain per reaction; more: packed hip.ts_batch jobs of this many reactions.",
)
@click.option(
    "--processes-per-job",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --reactions-per-job: reactions of a job run this many at once, sharing one model (batched "
    "predictions); the job asks for as many cores.",
)
@click.option("--group", "group_label", default=None, help="Group that collects the TS searches.")
@click.option("--daemon", is_flag=True, help="Submit to the daemon and return at once (default: run here).")
@click.option(
    "--max-active",
    type=click.IntRange(min=1),
    default=None,
    help="Throttled submission (with --daemon and --group): at most this many units unfinished at once; "
    "re-running the command submits only reactions not yet in the group.",
)
@click.option("--wait", is_flag=True, help="With --max-active: keep submitting until every reaction is submitted.")
@click.option("--queue", default=None, help="Scheduler partition / queue of every job.")
@click.option("--walltime", type=click.IntRange(min=1), default=None, help="Wall-time limit of every job (seconds).")
@click.option("--gpus", type=click.IntRange(min=0), default=0, help="GPUs per job (SLURM: #SBATCH --gres=gpu:N).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Where the worker runs the model.")
@click.option("--poll", default=10.0, show_default=True, help="Seconds between throttled submission rounds.")
def submit_cmd(
    source,
    from_group,
    profile,
    code_label,
    protocol,
    route,
    calculator,
    hessian,
    max_concurrent,
    reactions_per_job,
    processes_per_job,
    group_label,
    daemon,
    max_active,
    wait,
    poll,
    queue,
    walltime,
    gpus,
    device,
):
    """Find the TS of every reaction in SOURCE: a folder of reaction folders (reactant.* + product.*) or a
    multi-frame file (reactant, product, reactant, product, ...); or of the reactions in a group."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node, submit

    from ..submission import SubmissionError, check_services
    from ..workflows import ReactionBatchWorkChain

    if max_active is not None and not (daemon and group_label):
        raise click.UsageError("--max-active needs --daemon and --group (the group remembers what was submitted)")
    _load(profile)
    if daemon:
        try:
            check_services()
        except SubmissionError as exc:
            raise click.ClickException(str(exc)) from exc
    reactions = _reactions(source, from_group)
    try:
        code = orm.load_code(code_label)
    except NotExistent as exc:
        raise click.ClickException(f"code {code_label!r} not found; run `aiida-hip setup`") from exc
    hessian = hessian or ("reference" if calculator == "xtb" else "predicted")
    overrides = {"route": route, "parameters": {"calculator": calculator, "hessian": hessian}}
    if device:
        overrides["parameters"]["device"] = device
    options = scheduler_options(queue, walltime, gpus)
    recipe = {"protocol": protocol, "overrides": overrides, "reactions_per_job": reactions_per_job}

    def batch_builder(pairs, label, group):
        builder = ReactionBatchWorkChain.get_builder_from_protocol(
            code,
            pairs,
            protocol=protocol,
            overrides=overrides,
            max_concurrent=max_concurrent,
            group_label=group,
            reactions_per_job=reactions_per_job,
            processes_per_job=processes_per_job,
            options=options,
        )
        builder.metadata.label = label
        return builder

    if max_active is not None:
        from ..submission import ThrottledSubmitter
        from ..workflows import TransitionStateWorkChain

        def make_builder(unit):
            if reactions_per_job == 1:
                name, (reactant, product) = next(iter(unit.reactions.items()))
                builder = TransitionStateWorkChain.get_builder_from_protocol(
                    code, reactant, product, protocol=protocol, overrides=overrides, options=options
                )
                builder.metadata.label = name
                return builder
            return batch_builder(unit.reactions, f"packed: {', '.join(unit.reactions)}", group_label)

        submitter = ThrottledSubmitter(
            group_label, reactions, recipe, make_builder, max_active, reactions_per_job, echo=click.echo
        )
        already = len(reactions) - len(submitter.pending())
        if already:
            click.echo(f"{already} of {len(reactions)} reactions are already in group {group_label!r}: not again")
        if wait:
            submitter.run(poll=poll)
        else:
            submitter.submit_round()
        left = len(submitter.pending())
        click.echo(f"{left} reaction(s) left to submit" + (": run the same command again later" if left else ""))
        return
    label = Path(source).name if source is not None else from_group
    builder = batch_builder(reactions, label, group_label)
    if daemon:
        node = submit(builder)
        click.echo(f"submitted ReactionBatchWorkChain<{node.pk}> with {len(reactions)} reactions")
        return
    results, node = run_get_node(builder)
    click.echo(f"ReactionBatchWorkChain<{node.pk}>: {node.process_state.value} [{node.exit_status}]")
    if "summary" in results:
        click.echo(format_table(results["summary"]["reactions"]))


def scheduler_options(queue: str | None, walltime: int | None, gpus: int) -> dict | None:
    """``metadata.options`` of every job: partition, wall time and a GPU request (SLURM GRES)."""
    options: dict = {}
    if queue:
        options["queue_name"] = queue
    if walltime:
        options["max_wallclock_seconds"] = walltime
    if gpus:
        options["custom_scheduler_commands"] = f"#SBATCH --gres=gpu:{gpus}"
    return options or None


def _reactions(source: Path | None, from_group: str | None) -> dict:
    """Reaction name -> (reactant, product) ``StructureData`` from a folder/file or a stored group."""
    from aiida.common.exceptions import NotExistent

    from ..calcjobs import structure_from_dict
    from ..pipeline.inputs import ReactionInputError, read_batch

    if (source is None) == (from_group is None):
        raise click.UsageError("give either SOURCE or --from-group")
    if from_group is not None:
        from ..queries import reaction_pairs_from_group

        try:
            reactions = reaction_pairs_from_group(from_group)
        except (ValueError, NotExistent) as exc:
            raise click.ClickException(str(exc)) from exc
        if not reactions:
            raise click.ClickException(f"group {from_group!r} holds no reactions")
        return reactions
    try:
        good, bad = read_batch(source)
    except ReactionInputError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, message in bad.items():
        click.echo(f"skipped {name}: {message}", err=True)
    if not good:
        raise click.ClickException(f"no usable reaction in {source}")
    return {
        name: tuple(
            structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()}) for a in pair
        )
        for name, pair in good.items()
    }


def format_table(rows: list[dict]) -> str:
    """A plain-text table: reaction, status, barrier, imaginary frequency, IRC intended."""
    header = f"{'reaction':<30} {'status':<22} {'barrier/eV':>10} {'imag/cm-1':>10} {'IRC':>5}"
    lines = [header, "-" * len(header)]
    for row in rows:
        barrier = row.get("barrier_forward_ev")
        imag = row.get("imaginary_frequency_cm1")
        lines.append(
            f"{row.get('reaction', '')[:30]:<30} {row.get('status') or '':<22} "
            f"{(f'{barrier:.3f}' if barrier is not None else '-'):>10} "
            f"{(f'{imag:.0f}' if imag is not None else '-'):>10} "
            f"{('yes' if row.get('irc_intended') else 'no'):>5}"
        )
    return "\n".join(lines)


@click.group("reactions")
def reactions() -> None:
    """The TS database: list, show and export the reactions searched (hip.ts_search or packed hip.ts_batch)."""


@reactions.command("list")
@PROFILE_OPTION
@click.option("--status", default=None, help="Only this status (success, gsm_failed, irc_unintended, running, ...).")
@click.option("--barrier-max", type=float, default=None, help="Only forward barriers up to this (eV).")
@click.option("--group", default=None, help="Only TS searches in this group.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_cmd(profile, status, barrier_max, group, as_json) -> None:
    """One line per TS search, computed from provenance."""
    from ..queries import reaction_rows

    _load(profile)
    rows = reaction_rows(status=status, barrier_max=barrier_max, group=group)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = format_table(rows).splitlines()
    click.echo(f"{'pk':>6} " + table[0])
    click.echo("-" * (len(table[0]) + 7))
    for row, line in zip(rows, table[2:], strict=True):
        click.echo(f"{row['pk']:>6} {line}")
    click.echo(f"{len(rows)} reaction(s)")


@reactions.command("show")
@click.argument("pk", type=int)
@PROFILE_OPTION
def show_cmd(pk, profile) -> None:
    """Summary, outputs and stages of one TS search."""
    from aiida.common.exceptions import NotExistent

    from ..queries import reaction_detail

    _load(profile)
    try:
        detail = reaction_detail(pk)
    except (NotExistent, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(detail, indent=1, default=str))


@reactions.command("export")
@PROFILE_OPTION
@click.option("--format", "fmt", type=click.Choice(["extxyz", "csv"]), default="extxyz", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--status", default="success", show_default=True, help="Only this status ('all' for every one).")
@click.option("--group", default=None)
def export_cmd(profile, fmt, output, status, group) -> None:
    """Transition states (extxyz, with barrier and frequency in each frame's info) or the table (CSV)."""
    from ..queries import ROW_KEYS, reaction_rows, transition_states

    _load(profile)
    rows = reaction_rows(status=None if status == "all" else status, group=group)
    if fmt == "csv":
        with open(output, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROW_KEYS))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f"wrote {len(rows)} rows to {output}")
        return
    from ase.io import write

    frames = []
    for row, ts in transition_states(rows):
        atoms = ts.get_ase()
        atoms.pbc = False
        atoms.info.update({k: v for k, v in row.items() if v is not None and k != "ctime"})
        frames.append(atoms)
    write(output, frames, format="extxyz")
    click.echo(f"wrote {len(frames)} transition states to {output}")
