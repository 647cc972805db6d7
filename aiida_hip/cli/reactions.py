"""``aiida-hip reactions list|show|export``: the TS database, computed from provenance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
from aiida.common.exceptions import NotExistent
from ase.io import write

from ..common.types import Outcome, choices
from ..queries import ROW_KEYS, reaction_detail, reaction_rows, transition_states
from .options import PROFILE_OPTION
from .profile import open_profile

STATUSES = ", ".join(choices(Outcome))


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
def reactions_group() -> None:
    """The TS database: list, show and export the reactions searched (hip.ts_search or packed hip.ts_batch)."""


@reactions_group.command("list")
@PROFILE_OPTION
@click.option("--status", default=None, help=f"Only this status ({STATUSES}, running, ...).")
@click.option("--barrier-max", type=float, default=None, help="Only forward barriers up to this (eV).")
@click.option("--group", default=None, help="Only TS searches in this group.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_cmd(profile, status, barrier_max, group, as_json) -> None:
    """One line per TS search, computed from provenance."""
    open_profile(profile)
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


@reactions_group.command("show")
@click.argument("pk", type=int)
@PROFILE_OPTION
def show_cmd(pk, profile) -> None:
    """Summary, outputs and stages of one TS search."""
    open_profile(profile)
    try:
        detail = reaction_detail(pk)
    except (NotExistent, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(detail, indent=1, default=str))


@reactions_group.command("export")
@PROFILE_OPTION
@click.option("--format", "fmt", type=click.Choice(["extxyz", "csv"]), default="extxyz", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--status", default="success", show_default=True, help="Only this status ('all' for every one).")
@click.option("--group", default=None)
def export_cmd(profile, fmt, output, status, group) -> None:
    """Transition states (extxyz, with barrier and frequency in each frame's info) or the table (CSV)."""
    open_profile(profile)
    rows = reaction_rows(status=None if status == "all" else status, group=group)
    if fmt == "csv":
        with open(output, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROW_KEYS))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f"wrote {len(rows)} rows to {output}")
        return
    count = _write_transition_states(rows, output)
    click.echo(f"wrote {count} transition states to {output}")


def _write_transition_states(rows: list[dict], output: Path) -> int:
    """The TS geometry of every row with one, to extxyz with the row in each frame's info; how many."""
    frames = []
    for row, ts in transition_states(rows):
        atoms = ts.get_ase()
        atoms.pbc = False
        atoms.info.update({k: v for k, v in row.items() if v is not None and k != "ctime"})
        frames.append(atoms)
    write(output, frames, format="extxyz")
    return len(frames)
