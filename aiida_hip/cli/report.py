"""``aiida-hip report``: a static HTML page over a batch of TS searches."""

from __future__ import annotations

from pathlib import Path

import click

from ..report import collect_report, write_report
from ..report.collect import ReportTargetError
from .options import PROFILE_OPTION
from .profile import open_profile


@click.command("report")
@click.argument("target")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="HTML file to write (figures and TS geometries are embedded; no other files).",
)
@click.option("--title", default=None, help="Page title (default: names the group or batch).")
@PROFILE_OPTION
def report_cmd(target: str, out: Path, title: str | None, profile: str | None) -> None:
    """Write an HTML report of TARGET: a group label or the pk of a hip.reaction_batch work chain.

    Success funnel, barrier and imaginary-frequency histograms, the energy along each IRC, one row per
    reaction with its TS geometry, and the provenance (HIP checkpoint SHA-256, code versions).
    """
    open_profile(profile)
    try:
        data = collect_report(target, title=title)
    except ReportTargetError as exc:
        raise click.ClickException(str(exc)) from exc
    if not data.entries:
        raise click.ClickException(f"{data.scope} holds no TS search: nothing to report")
    path = write_report(data, out)
    n_ok = sum(e.row["status"] == "success" for e in data.entries)
    click.echo(f"wrote {path} ({len(data.entries)} reactions, {n_ok} verified)")
