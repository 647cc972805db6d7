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
        return load_profile(profile, allow_switch=True)
    except (MissingConfigurationError, ProfileConfigurationError) as exc:
        raise click.ClickException(f"no AiiDA profile to use ({exc}); run `aiida-hip setup` first") from exc


def ensure_profile(name: str, caching: bool = True) -> str:
    """Create the embedded profile (SQLite storage, ZeroMQ broker inside the daemon) unless it exists."""
    from aiida.manage.configuration import get_config

    try:
        existing = get_config(create=True).profile_names
    except Exception:
        existing = []
    if name not in existing:
        verdi = Path(sys.executable).with_name("verdi")
        command = [str(verdi), "presto", "--profile-name", name, "--use-zeromq", "--non-interactive"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise click.ClickException(f"`verdi presto` failed:\n{done.stdout}\n{done.stderr}")
        click.echo(f"created AiiDA profile {name!r} (SQLite storage, ZeroMQ broker started with the daemon)")
        from aiida.manage.configuration import reset_config

        reset_config()
    config = get_config()
    if caching:
        config.set_option("caching.enabled_for", [CACHED], scope=name)
        config.store()
    return name


def ensure_code(worker: str | None = None, computer_label: str = "localhost"):
    """The ``hip-worker@localhost`` code running this environment's ``aiida-hip-worker``."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer(computer_label)
    except NotExistent:
        import tempfile

        computer = orm.Computer(
            label=computer_label,
            hostname="localhost",
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(Path(tempfile.gettempdir()) / "aiida-hip-work"),
        ).store()
        computer.configure()
    computer.set_minimum_job_poll_interval(1.0)
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
            description="aiida-hip worker: runs one pipeline stage per CalcJob",
        )
        return code.store()


@click.command("setup")
@click.option("--profile", "profile_name", default="aiida-hip", show_default=True, help="Profile to create or use.")
@click.option("--worker", default=None, help="Path of aiida-hip-worker (default: beside this Python).")
@click.option("--caching/--no-caching", default=True, show_default=True, help="AiiDA caching for hip.* CalcJobs.")
def setup_cmd(profile_name: str, worker: str | None, caching: bool) -> None:
    """Create the embedded AiiDA profile (if missing), the localhost computer and the worker code."""
    name = ensure_profile(profile_name, caching)
    _load(name)
    code = ensure_code(worker)
    click.echo(f"profile {name!r}: code {code.full_label} (pk {code.pk}) -> {code.filepath_executable}")


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
@click.option("--group", "group_label", default=None, help="Group that collects the TS searches.")
@click.option("--daemon", is_flag=True, help="Submit to the daemon and return at once (default: run here).")
def submit_cmd(
    source, from_group, profile, code_label, protocol, route, calculator, hessian, max_concurrent, group_label, daemon
):
    """Find the TS of every reaction in SOURCE: a folder of reaction folders (reactant.* + product.*) or a
    multi-frame file (reactant, product, reactant, product, ...); or of the reactions in a group."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node, submit

    from ..calcjobs import structure_from_dict
    from ..pipeline.inputs import ReactionInputError, read_batch
    from ..workflows import ReactionBatchWorkChain

    _load(profile)
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
    else:
        try:
            good, bad = read_batch(source)
        except ReactionInputError as exc:
            raise click.ClickException(str(exc)) from exc
        for name, message in bad.items():
            click.echo(f"skipped {name}: {message}", err=True)
        if not good:
            raise click.ClickException(f"no usable reaction in {source}")
        reactions = {
            name: tuple(
                structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()})
                for a in pair
            )
            for name, pair in good.items()
        }
    try:
        code = orm.load_code(code_label)
    except NotExistent as exc:
        raise click.ClickException(f"code {code_label!r} not found; run `aiida-hip setup`") from exc
    hessian = hessian or ("reference" if calculator == "xtb" else "predicted")
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        code,
        reactions,
        protocol=protocol,
        overrides={"route": route, "parameters": {"calculator": calculator, "hessian": hessian}},
        max_concurrent=max_concurrent,
        group_label=group_label,
    )
    builder.metadata.label = Path(source).name if source is not None else from_group
    if daemon:
        node = submit(builder)
        click.echo(f"submitted ReactionBatchWorkChain<{node.pk}> with {len(reactions)} reactions")
        return
    results, node = run_get_node(builder)
    click.echo(f"ReactionBatchWorkChain<{node.pk}>: {node.process_state.value} [{node.exit_status}]")
    if "summary" in results:
        click.echo(format_table(results["summary"]["reactions"]))


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
    """The TS database: list, show and export the reactions searched with hip.ts_search."""


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
