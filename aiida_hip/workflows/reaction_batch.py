"""``hip.reaction_batch``: many reactions, at most ``max_concurrent`` TS searches at a time, one summary.

Reactions come as two namespaces keyed by reaction name (``reactants.<name>``, ``products.<name>``);
``ReactionBatchWorkChain.get_builder_from_folder`` reads a folder of pairs. Every TS search is a
``hip.ts_search`` child labelled with its reaction name and, with ``group_label``, added to that
group. A reaction whose search fails is reported in the summary, never dropped.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, append_, calcfunction, while_

from ..calcjobs import validate_molecule
from .ts_search import TransitionStateWorkChain


@calcfunction
def summarize_batch(names: orm.List, **results) -> orm.Dict:
    """One row per reaction (in input order) from the TS searches' ``output_parameters``."""
    rows, counts = [], {}
    for name in names.get_list():
        node = results.get(name)
        data = node.get_dict() if node is not None else {"status": "no_result"}
        row = {
            "reaction": name,
            "status": data.get("status"),
            "route": data.get("route"),
            "barrier_forward_ev": data.get("barrier_forward_ev"),
            "barrier_reverse_ev": data.get("barrier_reverse_ev"),
            "imaginary_frequency_cm1": data.get("imaginary_frequency_cm1"),
            "irc_intended": data.get("irc_intended", False),
            "message": data.get("message", ""),
        }
        rows.append(row)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return orm.Dict(
        {
            "n_reactions": len(rows),
            "n_success": counts.get("success", 0),
            "counts": counts,
            "reactions": rows,
        }
    )


class ReactionBatchWorkChain(WorkChain):
    """TS searches for a batch of reactions, throttled, ending with a summary ``Dict``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("reactants", valid_type=orm.StructureData, dynamic=True, validator=_validate_molecules)
        spec.input_namespace("products", valid_type=orm.StructureData, dynamic=True, validator=_validate_molecules)
        spec.input("max_concurrent", valid_type=orm.Int, default=lambda: orm.Int(4))
        spec.input(
            "group_label",
            valid_type=orm.Str,
            required=False,
            help="Put every reaction's TS search into this group (created if missing).",
        )
        spec.expose_inputs(TransitionStateWorkChain, namespace="ts_search", exclude=("reactant", "product"))
        spec.inputs.validator = cls.validate_inputs
        spec.outline(cls.setup, while_(cls.has_pending)(cls.submit_next, cls.collect), cls.results)
        spec.output("summary", valid_type=orm.Dict)
        spec.output_namespace("results", valid_type=orm.Dict, dynamic=True, help="output_parameters per reaction.")
        spec.output_namespace("transition_states", valid_type=orm.StructureData, dynamic=True)
        spec.default_output_node = "summary"
        spec.exit_code(410, "ERROR_ALL_REACTIONS_FAILED", message="None of the {n} reactions found a verified TS.")

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        reactants, products = set(value.get("reactants", {})), set(value.get("products", {}))
        if not reactants:
            return "the batch is empty: give at least one reaction (reactants.<name> and products.<name>)"
        if reactants != products:
            return f"every reaction needs a reactant and a product; unpaired: {sorted(reactants ^ products)}"
        from ..calcjobs import validate_pair

        for name in sorted(reactants):
            error = validate_pair(value["reactants"][name], value["products"][name])
            if error:
                return f"reaction {name!r}: {error}"
        if value.get("max_concurrent") is not None and value["max_concurrent"].value < 1:
            return "max_concurrent must be at least 1"
        return None

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        reactions: dict[str, tuple[orm.StructureData, orm.StructureData]],
        protocol: str | None = None,
        overrides: dict | None = None,
        model=None,
        options: dict | None = None,
        max_concurrent: int = 4,
        group_label: str | None = None,
    ):
        """A batch builder: every reaction gets ``hip.ts_search`` inputs from the same protocol."""
        if not reactions:
            raise ValueError("the batch is empty: give at least one reaction")
        first = next(iter(reactions.values()))
        search = TransitionStateWorkChain.get_builder_from_protocol(
            code, first[0], first[1], protocol=protocol, overrides=overrides, model=model, options=options
        )
        inputs = search._inputs(prune=True)
        for key in ("reactant", "product", "metadata"):
            inputs.pop(key, None)
        builder = cls.get_builder()
        builder.ts_search._update(inputs)
        builder.reactants = {name: pair[0] for name, pair in reactions.items()}
        builder.products = {name: pair[1] for name, pair in reactions.items()}
        builder.max_concurrent = orm.Int(max_concurrent)
        if group_label:
            builder.group_label = orm.Str(group_label)
        return builder

    def setup(self):
        self.ctx.pending = sorted(self.inputs.reactants)
        self.ctx.searches = []
        self.ctx.group = None
        if "group_label" in self.inputs:
            self.ctx.group, _ = orm.Group.collection.get_or_create(self.inputs.group_label.value)

    def has_pending(self):
        return bool(self.ctx.pending)

    def submit_next(self):
        base = AttributeDict(self.exposed_inputs(TransitionStateWorkChain, namespace="ts_search"))
        chunk, self.ctx.pending = (
            self.ctx.pending[: self.inputs.max_concurrent.value],
            self.ctx.pending[self.inputs.max_concurrent.value :],
        )
        for name in chunk:
            inputs = AttributeDict(base)
            inputs.reactant, inputs.product = self.inputs.reactants[name], self.inputs.products[name]
            inputs.metadata = {"label": name, "call_link_label": f"ts_search_{_link(name)}"}
            node = self.submit(TransitionStateWorkChain, **inputs)
            self.to_context(searches=append_(node))
            self.report(f"{name}: TransitionStateWorkChain<{node.pk}>")

    def collect(self):
        if self.ctx.group is not None:
            done = [node for node in self.ctx.searches if node.is_terminated]
            self.ctx.group.add_nodes(done)

    def results(self):
        names = sorted(self.inputs.reactants)
        results = {}
        for node in self.ctx.searches:
            if "output_parameters" in node.outputs:
                results[node.label] = node.outputs.output_parameters
                self.out(f"results.{_link(node.label)}", node.outputs.output_parameters)
            if "ts" in node.outputs:
                self.out(f"transition_states.{_link(node.label)}", node.outputs.ts)
        summary = summarize_batch(
            orm.List(names), **{_link(k): v for k, v in results.items()}, metadata={"call_link_label": "summary"}
        )
        self.out("summary", summary)
        self.report(f"{summary['n_success']} of {summary['n_reactions']} reactions succeeded")
        if summary["n_success"] == 0:
            return self.exit_codes.ERROR_ALL_REACTIONS_FAILED.format(n=summary["n_reactions"])
        return None


def _link(name: str) -> str:
    """A reaction name as a valid link label (letters, digits, underscores)."""
    import re

    return re.sub(r"\W", "_", name)


def _validate_molecules(value, _) -> str | None:
    for name, structure in (value or {}).items():
        error = validate_molecule(structure, None)
        if error:
            return f"{name}: {error}"
    return None
