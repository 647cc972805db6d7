"""One self-contained HTML page from :class:`ReportData` (jinja2 with autoescaping: reaction names are
user input)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..common.types import Outcome, outcome_or_none
from . import plots
from .collect import ReportData

#: rows with a thumbnail of their IRC profile (larger batches: the overview plot only)
MAX_THUMBNAILS = 200


def funnel(statuses: list[str], dft_verified: list[bool | None]) -> list[tuple[str, int]]:
    """(stage, reactions that got through it); the DFT row only when some TS was sent to DFT."""
    outcomes = [o for o in map(outcome_or_none, statuses) if o is not None]  # running searches count nowhere
    stages = [
        ("reactions", len(statuses)),
        ("path (TS guess)", sum(o.found_path for o in outcomes)),
        ("TS converged", sum(o.converged_ts for o in outcomes)),
        ("one imaginary mode", sum(o.ts_found for o in outcomes)),
        ("IRC intended", sum(o is Outcome.SUCCESS for o in outcomes)),
    ]
    if any(v is not None for v in dft_verified):
        stages.append(("DFT verified", sum(bool(v) for v in dft_verified)))
    return stages


def _data_uri(payload: bytes | str, mime: str) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def _fmt(value: Any, digits: int = 3, scientific: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}e}" if scientific else f"{value:.{digits}f}"
    return str(value)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "reaction"


def render_report(data: ReportData) -> str:
    rows = [e.row for e in data.entries]
    statuses = [row["status"] for row in rows]
    dft = [e.summary.get("dft_verified") for e in data.entries]
    with_ts = [row for row in rows if (o := outcome_or_none(row["status"])) is not None and o.converged_ts]
    figures = {
        "funnel": plots.funnel_png(funnel(statuses, dft)),
        "barriers": plots.barrier_histogram_png(
            [r["barrier_forward_ev"] for r in with_ts if r["barrier_forward_ev"] is not None],
            [r["barrier_reverse_ev"] for r in with_ts if r["barrier_reverse_ev"] is not None],
        ),
        "imaginary": plots.imaginary_histogram_png(
            [r["imaginary_frequency_cm1"] for r in with_ts if r["imaginary_frequency_cm1"] is not None]
        ),
        "profiles": plots.profiles_png([(e.row["reaction"], e.profile) for e in data.entries if e.profile]),
    }
    table = []
    for i, entry in enumerate(data.entries):
        row, summary = entry.row, entry.summary
        thumbnail = None
        if entry.profile and i < MAX_THUMBNAILS:
            thumbnail = _data_uri(plots.profile_thumbnail_png(entry.profile), "image/png")
        table.append(
            {
                "reaction": row["reaction"],
                "status": row["status"],
                "ok": row["status"] == "success",
                "pk": row["pk"],
                "job_pk": row["job_pk"],
                "route": _fmt(row["route"]),
                "barrier_forward": _fmt(row["barrier_forward_ev"]),
                "barrier_reverse": _fmt(row["barrier_reverse_ev"]),
                "gibbs_forward": _fmt(summary.get("gibbs_barrier_forward_ev")),
                "rate_forward": _fmt(summary.get("rate_forward_per_s"), 2, scientific=True),
                "imaginary": _fmt(row["imaginary_frequency_cm1"], 0),
                "irc": _fmt(row["irc_intended"]),
                "dft": _fmt(summary.get("dft_verified")),
                "ts_href": _data_uri(entry.ts_xyz, "chemical/x-xyz") if entry.ts_xyz else None,
                "ts_file": f"{_safe_name(row['reaction'])}_ts.xyz",
                "thumbnail": thumbnail,
            }
        )
    environment = Environment(loader=PackageLoader("aiida_hip.report", "templates"), autoescape=select_autoescape())
    template = environment.get_template("report.html.j2")
    return template.render(
        data=data,
        funnel=funnel(statuses, dft),
        figures={key: _data_uri(png, "image/png") for key, png in figures.items()},
        table=table,
        n_success=statuses.count("success"),
        n_unfinished=sum(outcome_or_none(s) is None for s in statuses),
        max_thumbnails=MAX_THUMBNAILS,
    )


def write_report(data: ReportData, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data), encoding="utf-8")
    return path
