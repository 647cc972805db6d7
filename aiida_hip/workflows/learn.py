"""The batch's reference labels, in provenance: search nodes -> a packed shard (calcfunction) -> fine-tune.

Every ``hip.ts_search`` stores reference Hessians it computed anyway: the TS judged with the reference
Hessian (``hip.tsopt``'s ``hessian``), both minimised ends (``hip.opt``'s, for the thermochemistry) and, with
``run_dft``, the DFT Hessian. :func:`reference_nodes` finds them; :func:`pack_reference_data` packs them into
the shard format the campaign reads (:mod:`aiida_hip.dataset.harvest`) as a ``FolderData`` whose inputs are
exactly the structure, Hessian and parameter nodes it holds, so a fine-tuned model links back to the
calculations it learnt from. Packing is file I/O on the stored arrays, no chemistry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import calcfunction

from ..calcjobs.base import molecule_arrays
from ..common.level import label_level
from ..common.types import Calculator

#: process label -> (kind of the geometry, output port of the geometry) for the stages that store a Hessian
_STAGES = {"HipTSOptCalculation": ("ts", "ts"), "HipOptCalculation": ("end", "structure")}


def _role(calc: orm.CalcJobNode) -> str:
    """``reactant`` or ``product`` for an end-point optimisation (from its call link label)."""
    link = calc.base.links.get_incoming(link_type=LinkType.CALL_CALC).first()
    label = link.link_label if link is not None else ""
    return "product" if "product" in label else "reactant" if "reactant" in label else "minimum"


def _entry(calc: orm.CalcJobNode) -> dict | None:
    """The reference label one stage CalcJob stored, or ``None`` (no Hessian, or a model's)."""
    outputs = calc.outputs
    if "hessian" not in outputs or "output_parameters" not in outputs:
        return None
    parameters = outputs.output_parameters
    if calc.process_label == "HipDFTCalculation":
        kind = "ts" if (parameters.get("expected") or "ts") == "ts" else "minimum"
        structure, calculator = calc.inputs.structure, Calculator.DFT.value
    elif calc.process_label in _STAGES:
        if outputs.hessian.base.attributes.get("hessian_source", None) != "reference":
            return None
        kind, port = _STAGES[calc.process_label]
        if port not in outputs:
            return None
        structure, kind = outputs[port], _role(calc) if kind == "end" else kind
        calculator = (parameters.get("level") or {}).get("calculator")
    else:
        return None
    if calculator not in (Calculator.XTB.value, Calculator.DFT.value) or parameters.get("energy_ev") is None:
        return None
    return {
        "kind": kind,
        "level": label_level(calculator),
        "structure": structure,
        "hessian": outputs.hessian,
        "parameters": parameters,
    }


def reference_nodes(search: orm.WorkflowNode) -> list[dict]:
    """Every reference label a ``hip.ts_search`` stored, in call order: ``kind``, ``level`` and the
    ``structure``, ``hessian`` and ``parameters`` nodes."""
    calcs = [n for n in search.called_descendants if isinstance(n, orm.CalcJobNode) and n.is_finished]
    entries = [_entry(calc) for calc in sorted(calcs, key=lambda n: n.pk)]
    return [e for e in entries if e is not None]


def labels_of(entries: list[tuple[str, dict]]):
    """``(reaction, entry)`` pairs -> :class:`~aiida_hip.dataset.harvest.Label` objects (units: eV, A)."""
    from ..dataset.harvest import Label  # h5py: only when labels are made

    labels = []
    for reaction, entry in entries:
        numbers, positions = molecule_arrays(entry["structure"])
        hessian = entry["hessian"].get_array("hessian")
        forces = np.zeros_like(positions)  # a converged stationary point: the stored forces are below tolerance
        energy = float(entry["parameters"]["energy_ev"])
        source = entry["hessian"].uuid
        labels.append(Label(reaction, entry["kind"], numbers, positions, energy, forces, hessian, source))
    return labels


def search_entries(searches: list[orm.WorkflowNode], level: str | None = None) -> list[tuple[str, dict]]:
    """``(reaction, entry)`` for every reference label of ``searches`` (only ``level``'s, if given)."""
    out = []
    for search in searches:
        name = search.label or f"search_{search.pk}"
        out += [(name, e) for e in reference_nodes(search) if level is None or e["level"] == level]
    return out


def pack_inputs(entries: list[tuple[str, dict]]) -> dict:
    """The keyword inputs of :func:`pack_reference_data` for ``entries`` (one level)."""
    levels = {entry["level"] for _, entry in entries}
    if len(levels) != 1:
        raise ValueError(f"one level of theory per pack, got {sorted(levels) or 'no label'}")
    index, nodes = [], {}
    for j, (reaction, entry) in enumerate(entries):
        index.append({"reaction": reaction, "kind": entry["kind"]})
        for what in ("structure", "hessian", "parameters"):
            nodes[f"n{j}_{what}"] = entry[what]
    return {"index": orm.List(index), "level": orm.Str(levels.pop()), **nodes}


@calcfunction
def pack_reference_data(index: orm.List, level: orm.Str, **nodes) -> orm.FolderData:
    """The labels in ``nodes`` (``n<j>_structure|hessian|parameters``, described by ``index``) as one shard
    folder: ``manifest.json`` + ``harvest_0000.h5``; attributes ``level``, counts and ``elements``."""
    from ..dataset.harvest import write_labels

    entries = [
        (
            row["reaction"],
            {
                "kind": row["kind"],
                "structure": nodes[f"n{j}_structure"],
                "hessian": nodes[f"n{j}_hessian"],
                "parameters": nodes[f"n{j}_parameters"],
            },
        )
        for j, row in enumerate(index.get_list())
    ]
    labels = labels_of(entries)
    with tempfile.TemporaryDirectory() as tmp:
        entry = write_labels(labels, Path(tmp), level.value, origin={"source": "aiida-hip pack_reference_data"})
        folder = orm.FolderData(tree=tmp)
    splits = entry["split_geometries"] if entry else {"train": 0, "test": 0}
    folder.base.attributes.set_many(
        {
            "level": level.value,
            "n_geometries": len(labels),
            "n_reactions": len({lb.reaction for lb in labels}),
            "n_train": splits["train"],
            "n_test": splits["test"],
            "elements": sorted({int(z) for lb in labels for z in lb.numbers}),
            "reactions": sorted({lb.reaction for lb in labels}),
        }
    )
    return folder
