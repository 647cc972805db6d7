"""L7: QueryBuilder functions over the TS database, shared by the ``aiida-hip`` commands and users.

Everything is read from provenance: the ``hip.ts_search`` work chain nodes, their
``output_parameters`` and ``ts`` outputs, and the CalcJobs they called; for packed jobs the
``hip.ts_batch`` CalcJobs and their ``results.<name>`` / ``transition_states.<name>`` outputs.
There is no side table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida import orm

from .workflows.learn import labels_of, search_entries

TS_SEARCH_PROCESS_TYPE = "aiida.workflows:hip.ts_search"
TS_BATCH_PROCESS_TYPE = "aiida.calculations:hip.ts_batch"
REACTION_BATCH_PROCESS_TYPE = "aiida.workflows:hip.reaction_batch"
#: the columns of the TS database: fields of the result schema (``common.result``) and where it is stored
ROW_KEYS = (
    "pk",
    "reaction",
    "status",
    "barrier_forward_ev",
    "barrier_reverse_ev",
    "imaginary_frequency_cm1",
    "irc_intended",
    "route",
    "ts_pk",
    "model_sha256",
    "job_pk",
    "ctime",
)


def _scope(qb: orm.QueryBuilder, group: str | None, batch: int | None) -> dict[str, str]:
    """Anchor ``qb`` on a group (by label) or a batch work chain (by pk); returns the join for the next node."""
    if group is not None:
        qb.append(orm.Group, filters={"label": group}, tag="group")
        return {"with_group": "group"}
    if batch is not None:
        qb.append(orm.WorkflowNode, filters={"id": batch}, tag="batch")
        return {"with_incoming": "batch"}  # the batch's CALL links
    return {}


def ts_search_query(group: str | None = None, batch: int | None = None) -> orm.QueryBuilder:
    """Every ``hip.ts_search`` node (optionally only those in ``group`` or called by the work chain ``batch``),
    with its parameters and TS."""
    qb = orm.QueryBuilder()
    join = _scope(qb, group, batch)
    qb.append(
        orm.WorkflowNode,
        filters={"process_type": TS_SEARCH_PROCESS_TYPE},
        tag="search",
        project=["id", "label", "attributes.process_state", "attributes.exit_status", "ctime"],
        **join,
    )
    qb.append(
        orm.Dict,
        with_incoming="search",
        edge_filters={"label": "output_parameters"},
        project=["attributes"],
        outerjoin=True,
    )
    qb.append(orm.StructureData, with_incoming="search", edge_filters={"label": "ts"}, project=["id"], outerjoin=True)
    qb.order_by({"search": {"id": "asc"}})
    return qb


def _job_query(group: str | None, tag_output: str, output_type, batch: int | None = None) -> orm.QueryBuilder:
    """``hip.ts_batch`` jobs (in ``group`` or called by ``batch`` if given) with their outputs whose link label
    starts ``tag_output``."""
    qb = orm.QueryBuilder()
    join = _scope(qb, group, batch)
    qb.append(orm.CalcJobNode, filters={"process_type": TS_BATCH_PROCESS_TYPE}, tag="job", **join)
    qb.add_projection("job", ["id", "ctime"])
    qb.append(
        output_type,
        with_incoming="job",
        edge_filters={"label": {"like": f"{tag_output}__%"}},
        edge_project=["label"],
        project=["id", "attributes"] if output_type is orm.Dict else ["id"],
    )
    qb.order_by({"job": {"id": "asc"}})
    return qb


def packed_rows(group: str | None = None, batch: int | None = None) -> list[dict[str, Any]]:
    """One row per reaction of the packed ``hip.ts_batch`` jobs; ``pk`` is the reaction's result ``Dict``."""
    ts = {
        (job_pk, label.split("__", 1)[1]): ts_pk
        for job_pk, _, ts_pk, label in _job_query(group, "transition_states", orm.StructureData, batch).all()
    }
    rows = []
    for job_pk, ctime, pk, data, label in _job_query(group, "results", orm.Dict, batch).all():
        name = label.split("__", 1)[1]
        status = data.get("status") or "unknown"
        ts_pk = ts.get((job_pk, name))
        rows.append(_row(pk, data.get("reaction") or name, status, data, ts_pk, job_pk, ctime))
    return rows


def _row(pk, reaction: str, status: str, data: dict, ts_pk, job_pk, ctime) -> dict[str, Any]:
    """One row of the TS database (keys ``ROW_KEYS``) from a search's summary ``data``."""
    return {
        "pk": pk,
        "reaction": reaction,
        "status": status,
        "barrier_forward_ev": data.get("barrier_forward_ev"),
        "barrier_reverse_ev": data.get("barrier_reverse_ev"),
        "imaginary_frequency_cm1": data.get("imaginary_frequency_cm1"),
        "irc_intended": data.get("irc_intended"),
        "route": data.get("route"),
        "ts_pk": ts_pk,
        "model_sha256": (data.get("model") or {}).get("sha256"),
        "job_pk": job_pk,
        "ctime": ctime.isoformat(timespec="seconds"),
    }


def _status(state: str | None, exit_status: int | None, parameters: dict | None) -> str:
    if parameters and parameters.get("status"):
        return parameters["status"]
    if state in ("created", "waiting", "running"):
        return state
    if state == "finished":
        return "failed" if exit_status else "finished"
    return state or "unknown"


def reaction_rows(
    status: str | None = None, barrier_max: float | None = None, group: str | None = None, batch: int | None = None
) -> list[dict[str, Any]]:
    """One row per TS search (work chain or packed job's reaction): status, barriers (eV), imaginary
    frequency (cm^-1), IRC verdict, TS pk; all of them, those in ``group`` or those of the batch work chain
    ``batch`` (pk)."""
    rows = []
    for pk, label, state, exit_status, ctime, parameters, ts_pk in ts_search_query(group, batch).all():
        parameters = parameters or {}
        reaction = label or f"ts_search-{pk}"
        rows.append(_row(pk, reaction, _status(state, exit_status, parameters), parameters, ts_pk, None, ctime))
    rows.extend(packed_rows(group, batch))

    def keep(row: dict) -> bool:
        barrier = row["barrier_forward_ev"]
        return (status is None or row["status"] == status) and (
            barrier_max is None or (barrier is not None and barrier <= barrier_max)
        )

    return [row for row in rows if keep(row)]


def reaction_detail(pk: int) -> dict[str, Any]:
    """Everything about one TS search: its row, summary, outputs and the CalcJobs it ran, in order."""
    node = orm.load_node(pk)
    if isinstance(node, orm.Dict):
        return _packed_detail(node)
    if node.process_type != TS_SEARCH_PROCESS_TYPE:
        raise ValueError(f"node {pk} is a {node.process_label or type(node).__name__}, not a hip.ts_search")
    parameters = node.outputs.output_parameters.get_dict() if "output_parameters" in node.outputs else {}
    stages = []
    for sub in sorted(node.called_descendants, key=lambda n: n.ctime):
        if isinstance(sub, orm.CalcJobNode):
            sub_parameters = sub.outputs.output_parameters.get_dict() if "output_parameters" in sub.outputs else {}
            stages.append(
                {
                    "pk": sub.pk,
                    "process": sub.process_label,
                    "label": sub.label,
                    "exit_status": sub.exit_status,
                    "exit_message": sub.exit_message,
                    "outcome": sub_parameters.get("outcome"),
                    "wall_time_s": sub_parameters.get("wall_time_s"),
                    "computer": sub.computer.label if sub.computer else None,
                }
            )
    outputs = {
        label: f"{type(n).__name__}<{n.pk}>"
        for label, n in ((lk.link_label, lk.node) for lk in node.base.links.get_outgoing().all())
        if isinstance(n, orm.Data)
    }
    model = served_model(node)
    return {
        "pk": node.pk,
        "reaction": node.label,
        "model": None if model is None else model_lineage(model),
        "process_state": node.process_state.value if node.process_state else None,
        "exit_status": node.exit_status,
        "exit_message": node.exit_message,
        "attempts": parameters.get("attempts", []),
        "summary": parameters,
        "outputs": outputs,
        "stages": stages,
    }


def _packed_detail(result: orm.Dict) -> dict[str, Any]:
    """A packed job's reaction: its result ``Dict`` (``pk``), the job and the job's TS output."""
    creator = result.creator
    if creator is None or creator.process_type != TS_BATCH_PROCESS_TYPE:
        raise ValueError(f"node {result.pk} is a Dict but not a reaction result of a hip.ts_batch job")
    link = result.base.links.get_incoming(node_class=orm.CalcJobNode).one()
    name = link.link_label.split("__", 1)[1]
    outputs = {"results": f"Dict<{result.pk}>"}
    ts_links = creator.base.links.get_outgoing(link_label_filter=f"transition_states__{name}").all()
    if ts_links:
        outputs["ts"] = f"StructureData<{ts_links[0].node.pk}>"
    job_parameters = creator.outputs.output_parameters.get_dict() if "output_parameters" in creator.outputs else {}
    return {
        "pk": result.pk,
        "reaction": result.get("reaction") or name,
        "process_state": creator.process_state.value if creator.process_state else None,
        "exit_status": creator.exit_status,
        "exit_message": creator.exit_message,
        "summary": result.get_dict(),
        "outputs": outputs,
        "stages": [
            {
                "pk": creator.pk,
                "process": creator.process_label,
                "label": creator.label,
                "exit_status": creator.exit_status,
                "exit_message": creator.exit_message,
                "outcome": result.get("outcome"),
                "wall_time_s": result.get("wall_time_s_worker"),
                "computer": creator.computer.label if creator.computer else None,
                "reactions_in_job": job_parameters.get("n_reactions"),
            }
        ],
    }


def transition_states(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], orm.StructureData]]:
    """The TS node of each row that has one."""
    return [(row, orm.load_node(row["ts_pk"])) for row in rows if row.get("ts_pk") is not None]


def reaction_pairs_from_group(label: str) -> dict[str, tuple[orm.StructureData, orm.StructureData]]:
    """Reactions stored as a group of ``StructureData`` with extras ``reaction`` (name) and ``role``
    (``reactant`` or ``product``): the input form of a batch kept in the database."""
    pairs: dict[str, dict[str, orm.StructureData]] = {}
    group = orm.load_group(label)
    qb = orm.QueryBuilder().append(orm.Group, filters={"id": group.pk}, tag="group")
    qb.append(orm.StructureData, with_group="group", project=["*"])
    for (node,) in qb.all():
        name, role = node.base.extras.get("reaction", None), node.base.extras.get("role", None)
        if name is None or role not in ("reactant", "product"):
            raise ValueError(
                f"StructureData<{node.pk}> in group {label!r} needs extras 'reaction' and 'role' (reactant|product)"
            )
        if role in pairs.setdefault(name, {}):
            raise ValueError(f"reaction {name!r} has two {role}s in group {label!r}")
        pairs[name][role] = node
    incomplete = sorted(name for name, pair in pairs.items() if len(pair) != 2)
    if incomplete:
        raise ValueError(f"reactions without both reactant and product in group {label!r}: {incomplete}")
    return {name: (pair["reactant"], pair["product"]) for name, pair in sorted(pairs.items())}


def store_reaction_pairs(label: str, pairs: dict[str, tuple[orm.StructureData, orm.StructureData]]) -> orm.Group:
    """Store reactions as a group that :func:`reaction_pairs_from_group` (and ``submit --from-group``) reads."""
    group, _ = orm.Group.collection.get_or_create(label)
    for name, (reactant, product) in pairs.items():
        for role, node in (("reactant", reactant), ("product", product)):
            node.store()
            node.base.extras.set_many({"reaction": name, "role": role})
            group.add_nodes(node)
    return group


FINETUNE_PROCESS_TYPE = "aiida.calculations:hip.finetune"


def served_model(search: orm.WorkflowNode) -> orm.Data | None:
    """The ``HipModelData`` a ``hip.ts_search`` gave its TS optimisation (``None``: a level without a model)."""
    for link in search.base.links.get_incoming().all():
        if link.link_label in ("tsopt__tsopt__model", "path__model", "opt__model"):
            return link.node
    return None


def _search_of(node: orm.Node) -> orm.ProcessNode | None:
    """The ``hip.ts_search`` whose stage created ``node`` (walking up the callers)."""
    process = node.creator
    while process is not None and process.process_type != TS_SEARCH_PROCESS_TYPE:
        process = process.caller
    return process


def model_lineage(model: orm.Data, depth: int = 20) -> dict[str, Any]:
    """A model and where it came from: the ``hip.finetune`` that trained it, the label nodes it learnt from
    (and the searches that computed them), its parent checkpoint, recursively (the shipped model has none)."""
    out: dict[str, Any] = {
        "pk": model.pk,
        "sha256": model.base.attributes.get("sha256", None),
        "source": model.base.attributes.get("source", None),
        "level": model.base.attributes.get("level", None),
        "trained_by": None,
        "trained_on": [],
        "trained_on_searches": [],
        "parent": None,
    }
    creator = model.creator
    if creator is None or creator.process_type != FINETUNE_PROCESS_TYPE:
        return out
    data = creator.inputs.data
    packer = data.creator
    hessians = (
        []
        if packer is None
        else [link.node for link in packer.base.links.get_incoming().all() if link.link_label.endswith("_hessian")]
    )
    searches = {s.pk for s in (_search_of(h) for h in hessians) if s is not None}
    parent = creator.inputs.model
    out |= {
        "trained_by": creator.pk,
        "data": data.pk,
        "trained_on": sorted(h.pk for h in hessians),
        "trained_on_searches": sorted(searches),
        "held_out": (
            creator.outputs.output_parameters.get("held_out") if "output_parameters" in creator.outputs else None
        ),
        "parent": model_lineage(parent, depth - 1) if depth > 0 else {"pk": parent.pk},
    }
    return out


def ts_search_nodes(
    group: str | None = None, batch: int | None = None, status: str | None = None
) -> list[orm.WorkflowNode]:
    """The terminated ``hip.ts_search`` nodes of ``group`` or ``batch`` (all without either), only those whose
    summary status is ``status`` if given, in creation order."""
    nodes = []
    for pk, _, state, _, _, parameters, _ in ts_search_query(group, batch).all():
        if state not in ("finished", "excepted", "killed"):
            continue
        if status is not None and (parameters or {}).get("status") != status:
            continue
        nodes.append(orm.load_node(pk))
    return nodes


def labels_from_profile(
    out: str | Path,
    group: str | None = None,
    batch: int | None = None,
    level: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Write the reference labels of the selected searches into the shard folder ``out`` (appended to an
    existing one of the same level); returns the counts and the level. Each geometry keeps the UUID of the
    Hessian node it came from."""
    from .dataset.harvest import write_labels  # h5py + torch (the Sample type): only when labels are written

    searches = ts_search_nodes(group, batch, status)
    entries = search_entries(searches, level)
    levels = sorted({entry["level"] for _, entry in entries})
    if not entries:
        raise ValueError(f"no reference Hessian in the {len(searches)} selected search(es): the selection is empty")
    if len(levels) > 1:
        raise ValueError(f"the selection holds labels of several levels {levels}: choose one with level=")
    origin = {"source": "aiida-hip data from-profile", "group": group, "batch": batch, "status": status}
    entry = write_labels(labels_of(entries), out, levels[0], origin=origin)
    return {
        "searches": len(searches),
        "labels": len(entries),
        "level": levels[0],
        "new_reactions": 0 if entry is None else entry["ok"],
        "split_geometries": None if entry is None else entry["split_geometries"],
    }
