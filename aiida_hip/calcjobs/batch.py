"""``hip.ts_batch``: many reactions in one job, each through the whole TS search, one model load.

On a cluster a job per stage per reaction costs a queue wait, an interpreter start and a model load
each time; packing reactions into one job pays those once. The worker runs the ``ts_search`` stage
for every reaction in turn (results written after each one), so a job killed by the scheduler keeps
what it finished and the parser attaches it.
"""

from __future__ import annotations

import re

from aiida import orm

from ..common import exit_codes
from ..common.result import result_row
from .base import HipStageCalculation, structure_to_dict, validate_molecule
from .stages import validate_pair


def summary_row(name: str, data: dict | None) -> dict:
    """One reaction's row of a batch summary (``status`` ``no_result`` when there is none)."""
    return {"reaction": name, **result_row(data)}


def summarize_rows(rows: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"n_reactions": len(rows), "n_success": counts.get("success", 0), "counts": counts, "reactions": rows}


def link_label(name: str) -> str:
    """A reaction name as a valid link label (letters, digits, underscores)."""
    return re.sub(r"\W", "_", name)


def validate_molecules(value, _) -> str | None:
    """Every structure of a ``name -> StructureData`` namespace is a molecule (see ``validate_molecule``)."""
    for name, structure in (value or {}).items():
        error = validate_molecule(structure, None)
        if error:
            return f"{name}: {error}"
    return None


class HipTSBatchCalculation(HipStageCalculation):
    """The whole TS search (endpoints, path, TS optimisation, frequencies, IRC) for several reactions.

    Reactions come as ``reactants.<name>`` and ``products.<name>``; ``settings`` are those of the
    pipeline's ``TSSearchSettings`` (``route``, ``endpoint_opt``, ``gsm``, ``tsopt``, ``sella``,
    ``irc``, ``freq_hessian``, ...). Outputs per reaction: ``results.<name>`` and, when a TS was
    found, ``transition_states.<name>``. The job succeeds when every reaction has a result, whatever
    its chemistry; ``output_parameters`` counts the statuses.
    """

    _stage = "ts_search"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("reactants", valid_type=orm.StructureData, dynamic=True, validator=validate_molecules)
        spec.input_namespace("products", valid_type=orm.StructureData, dynamic=True, validator=validate_molecules)
        spec.inputs["metadata"]["options"]["parser_name"].default = "hip.ts_batch"
        spec.input(
            "metadata.options.processes",
            valid_type=int,
            default=1,
            help="Reactions run this many at a time, each in its own process, sharing the worker's one model: "
            "their energy, force and Hessian requests are answered in batched forwards (on the GPU where there "
            "is one). Ask the scheduler for as many cores.",
        )
        spec.inputs.validator = cls.validate_batch
        spec.output_namespace("results", valid_type=orm.Dict, dynamic=True, help="The TS search result per reaction.")
        spec.output_namespace("transition_states", valid_type=orm.StructureData, dynamic=True)
        exit_codes.declare(spec, (exit_codes.BATCH_INCOMPLETE,))

    @classmethod
    def validate_batch(cls, value, ctx) -> str | None:
        error = super().validate_inputs(value, ctx)
        if error:
            return error
        reactants, products = value.get("reactants") or {}, value.get("products") or {}
        if not reactants:
            return "the job carries no reaction: give reactants.<name> and products.<name>"
        if set(reactants) != set(products):
            return f"every reaction needs a reactant and a product; unpaired: {sorted(set(reactants) ^ set(products))}"
        for name in sorted(reactants):
            error = validate_pair(reactants[name], products[name])
            if error:
                return f"reaction {name!r}: {error}"
        return None

    def reaction_entries(self) -> list[dict]:
        return [
            {
                "name": name,
                "structures": {
                    "reactant": structure_to_dict(self.inputs.reactants[name]),
                    "product": structure_to_dict(self.inputs.products[name]),
                },
            }
            for name in sorted(self.inputs.reactants)
        ]
