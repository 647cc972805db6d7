"""L7: QueryBuilder functions over the TS database, shared by the ``aiida-hip`` commands and users.

Everything is read from provenance: the ``hip.ts_search`` work chain nodes, their
``output_parameters`` and ``ts`` outputs, and the CalcJobs they called. There is no side table.
"""

from __future__ import annotations

from typing import Any

from aiida import orm

TS_SEARCH_PROCESS_TYPE = "aiida.workflows:hip.ts_search"
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
    "ctime",
)


def ts_search_query(group: str | None = None) -> orm.QueryBuilder:
    """Every ``hip.ts_search`` node (optionally only those in ``group``), with its parameters and TS."""
    qb = orm.QueryBuilder()
    if group is not None:
        qb.append(orm.Group, filters={"label": group}, tag="group")
        qb.append(
            orm.WorkflowNode,
            with_group="group",
            filters={"process_type": TS_SEARCH_PROCESS_TYPE},
            tag="search",
            project=["id", "label", "attributes.process_state", "attributes.exit_status", "ctime"],
        )
    else:
        qb.append(
            orm.WorkflowNode,
            filters={"process_type": TS_SEARCH_PROCESS_TYPE},
            tag="search",
            project=["id", "label", "attributes.process_state", "attributes.exit_status", "ctime"],
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


def _status(state: str | None, exit_status: int | None, parameters: dict | None) -> str:
    if parameters and parameters.get("status"):
        return parameters["status"]
    if state in ("created", "waiting", "running"):
        return state
    if state == "finished":
        return "failed" if exit_status else "finished"
    return state or "unknown"


def reaction_rows(
    status: str | None = None, barrier_max: float | None = None, group: str | None = None
) -> list[dict[str, Any]]:
    """One row per TS search: status, barriers (eV), imaginary frequency (cm^-1), IRC verdict, TS pk."""
    rows = []
    for pk, label, state, exit_status, ctime, parameters, ts_pk in ts_search_query(group).all():
        parameters = parameters or {}
        row = {
            "pk": pk,
            "reaction": label or f"ts_search-{pk}",
            "status": _status(state, exit_status, parameters),
            "barrier_forward_ev": parameters.get("barrier_forward_ev"),
            "barrier_reverse_ev": parameters.get("barrier_reverse_ev"),
            "imaginary_frequency_cm1": parameters.get("imaginary_frequency_cm1"),
            "irc_intended": parameters.get("irc_intended"),
            "route": parameters.get("route"),
            "ts_pk": ts_pk,
            "model_sha256": (parameters.get("model") or {}).get("sha256"),
            "ctime": ctime.isoformat(timespec="seconds"),
        }
        if status is not None and row["status"] != status:
            continue
        if barrier_max is not None and (row["barrier_forward_ev"] is None or row["barrier_forward_ev"] > barrier_max):
            continue
        rows.append(row)
    return rows


def reaction_detail(pk: int) -> dict[str, Any]:
    """Everything about one TS search: its row, summary, outputs and the CalcJobs it ran, in order."""
    node = orm.load_node(pk)
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
    return {
        "pk": node.pk,
        "reaction": node.label,
        "process_state": node.process_state.value if node.process_state else None,
        "exit_status": node.exit_status,
        "exit_message": node.exit_message,
        "summary": parameters,
        "outputs": outputs,
        "stages": stages,
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
