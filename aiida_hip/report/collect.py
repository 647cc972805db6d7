"""Gather one report's data from provenance: rows, summaries, IRC energy profiles, TS geometries, models."""

from __future__ import annotations

import importlib.metadata
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.manage import get_manager
from ase.io import write

from ..data import HipModelData
from ..queries import REACTION_BATCH_PROCESS_TYPE, reaction_rows

#: packages whose versions say what produced and rendered the results
PACKAGES = ("aiida-hip", "aiida-core", "torch", "e3nn", "pysisyphus", "sella", "tblite", "pyscf", "ase")


@dataclass
class ReactionEntry:
    """One reaction of the report: its TS-database row, its summary and what the page shows of it."""

    row: dict[str, Any]
    summary: dict[str, Any]
    profile: dict[str, list[float]] | None = None  # s_angstrom, energy_ev relative to the reactant
    ts_xyz: str | None = None


@dataclass
class ReportData:
    title: str
    scope: str
    entries: list[ReactionEntry]
    models: list[dict[str, Any]] = field(default_factory=list)
    process_versions: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    profile_name: str = ""
    created: str = ""


class ReportTargetError(ValueError):
    """The report target is neither a group label nor the pk of a ``hip.reaction_batch`` work chain."""


def resolve_target(target: str) -> tuple[str | None, int | None, str]:
    """``(group, batch_pk, description)`` for a group label or a batch work chain pk."""
    if target.isdigit():
        try:
            node = orm.load_node(int(target))
        except NotExistent:
            node = None
        if node is not None:
            if getattr(node, "process_type", None) != REACTION_BATCH_PROCESS_TYPE:
                kind = getattr(node, "process_label", None) or type(node).__name__
                raise ReportTargetError(f"node {target} is a {kind}, not a hip.reaction_batch work chain")
            return None, node.pk, f"hip.reaction_batch <{node.pk}> {node.label or ''}".strip()
    try:
        group = orm.load_group(label=target)
    except NotExistent as exc:
        raise ReportTargetError(f"no group labelled {target!r} and no hip.reaction_batch with that pk") from exc
    return group.label, None, f"group {group.label!r} ({len(group.nodes)} nodes)"


def _ts_xyz(pk: int | None, name: str) -> str | None:
    if pk is None:
        return None
    buffer = io.StringIO()
    atoms = orm.load_node(pk).get_ase()
    atoms.info = {"comment": f"TS of {name} (StructureData pk {pk}), Angstrom"}
    write(buffer, atoms, format="xyz", comment=atoms.info["comment"])
    return buffer.getvalue()


def _oriented_profile(irc: dict | None, endpoints: dict | None, barrier: float | None) -> dict | None:
    """The IRC energy profile relative to the reactant (eV), the reactant side at negative path length."""
    profile = (irc or {}).get("profile")
    if not profile or barrier is None:
        return None
    s, e = list(profile["s_angstrom"]), list(profile["energy_ev"])
    top = max(e)
    energy = [x - top + barrier for x in e]  # the highest point is the TS, ``barrier`` above the reactant
    if (endpoints or {}).get("backward_is") == "reactant":  # the backward branch is the end of the list
        s, energy = [-x for x in reversed(s)], list(reversed(energy))
    return {"s_angstrom": s, "energy_ev": energy}


def _search_entry(row: dict) -> ReactionEntry:
    """A ``hip.ts_search`` row: its ``output_parameters`` and, from its IRC CalcJob, the profile."""
    node = orm.load_node(row["pk"])
    summary = node.outputs.output_parameters.get_dict() if "output_parameters" in node.outputs else {}
    irc, endpoints = None, summary.get("endpoints")
    if "irc" in node.outputs and node.outputs.irc.creator is not None:
        calc = node.outputs.irc.creator
        parameters = calc.outputs.output_parameters.get_dict() if "output_parameters" in calc.outputs else {}
        irc, endpoints = parameters.get("irc"), parameters.get("endpoints") or endpoints
    profile = _oriented_profile(irc, endpoints, row["barrier_forward_ev"])
    return ReactionEntry(row, summary, profile, _ts_xyz(row["ts_pk"], row["reaction"]))


def _packed_entry(row: dict) -> ReactionEntry:
    """A reaction of a packed ``hip.ts_batch`` job: its result ``Dict`` holds every stage's summary."""
    summary = orm.load_node(row["pk"]).get_dict()
    summary |= {k: v for k, v in (summary.get("thermochemistry") or {}).items() if k.endswith(("_ev", "_per_s"))}
    stages = summary.get("stages") or {}
    suffix = "_sella" if summary.get("route") == "sella" else ""
    irc, endpoints = stages.get(f"irc{suffix}"), stages.get(f"endpoints_check{suffix}")
    profile = _oriented_profile(irc, endpoints, row["barrier_forward_ev"])
    return ReactionEntry(row, summary, profile, _ts_xyz(row["ts_pk"], row["reaction"]))


def _models(shas: set[str]) -> list[dict[str, Any]]:
    """The ``hip.model`` nodes behind the rows' checkpoint hashes (hash alone when no node is stored)."""
    out = []
    for sha in sorted(shas):
        qb = orm.QueryBuilder().append(HipModelData, filters={"attributes.sha256": sha})
        node = qb.first(flat=True)
        info = {"sha256": sha, "pk": None, "filename": None, "architecture": None}
        if node is not None:
            info.update(pk=node.pk, filename=node.base.attributes.get("filename", None))
            info["architecture"] = json.dumps(node.base.attributes.get("architecture", None), sort_keys=True)
        out.append(info)
    return out


def environment_versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def collect_report(target: str, title: str | None = None) -> ReportData:
    """Everything the page shows for a group label or a ``hip.reaction_batch`` pk (a loaded profile is needed)."""
    group, batch, scope = resolve_target(target)
    rows = sorted(reaction_rows(group=group, batch=batch), key=lambda r: (r["reaction"], r["pk"]))
    entries = [(_packed_entry if row["job_pk"] is not None else _search_entry)(row) for row in rows]
    versions: dict[str, dict] = {}
    for entry in entries:
        pk = entry.row["job_pk"] or entry.row["pk"]
        version = orm.load_node(pk).base.attributes.get("version", None) or {}
        versions.setdefault(json.dumps(version, sort_keys=True), version)
    profile = get_manager().get_profile()
    return ReportData(
        title=title or f"TS searches: {scope}",
        scope=scope,
        entries=entries,
        models=_models({e.row["model_sha256"] for e in entries if e.row["model_sha256"]}),
        process_versions=list(versions.values()),
        environment=environment_versions(),
        profile_name=profile.name if profile else "",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
