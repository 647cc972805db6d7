"""``hip.reaction_batch``: many reactions, at most ``max_concurrent`` TS searches at a time, one summary.

Reactions come as two namespaces keyed by reaction name (``reactants.<name>``, ``products.<name>``).
With ``reactions_per_job`` 1 every TS search is a ``hip.ts_search`` child (one CalcJob per stage,
restart handlers, the richest provenance), labelled with its reaction name. With more, reactions are
packed into ``hip.ts_batch`` jobs of that size (one model load and one queue wait per job, the form
for thousands of reactions on a cluster); reactions a killed job did not finish go into a new job,
once. With ``group_label`` the searches (or jobs) go into that group. A reaction whose search fails
is reported in the summary, never dropped.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, append_, calcfunction, while_

from ..calcjobs import HipTSBatchCalculation, validate_pair
from ..calcjobs.batch import link_label, summarize_rows, summary_row, validate_molecules
from ..common.types import DEFAULT_VERIFY, Route
from ..data import HipModelData
from .batch_learn import LearnMixin, learn_input_error, validate_learn
from .resume import SubmitOnceMixin
from .ts_search import TransitionStateWorkChain

#: a packed job's reactions that got no result are packed again this many times at most
MAX_JOB_ATTEMPTS = 2


@calcfunction
def summarize_batch(names: orm.List, learn_rounds: orm.List | None = None, **results) -> orm.Dict:
    """One row per reaction (in input order) from the TS searches' ``output_parameters``; with ``learn``, its
    fine-tune rounds (model, held-out Hessian MAE before and after, adopted or not)."""
    rows = [summary_row(name, results[name].get_dict() if name in results else None) for name in names.get_list()]
    summary = summarize_rows(rows)
    if learn_rounds is not None:
        summary["learn"] = learn_rounds.get_list()
    return orm.Dict(summary)


@calcfunction
def summarize_jobs(names: orm.List, **jobs) -> orm.Dict:
    """One row per reaction (in input order) from the packed jobs' own summaries (``job_<k>``: their
    ``output_parameters``, in submission order). A reaction packed again takes its row from the later job
    that has a result. One input per job rather than one per reaction: a summary of thousands of reactions
    would otherwise spend most of its time storing links."""
    rows: dict[str, dict] = {}
    for key in sorted(jobs, key=lambda k: int(k.rsplit("_", 1)[1])):
        for row in jobs[key].get_dict().get("reactions", []):
            if row["status"] != "no_result" or row["reaction"] not in rows:
                rows[row["reaction"]] = row
    return orm.Dict(summarize_rows([rows.get(name) or summary_row(name, None) for name in names.get_list()]))


def packed_settings(inputs: dict) -> dict:
    """The pipeline's ``TSSearchSettings`` (as a dict) from ``hip.ts_search`` inputs: the protocol's
    per-stage settings folded into the one settings mapping of a ``hip.ts_batch`` job."""

    def settings(*path: str) -> dict:
        node = inputs
        for key in path:
            node = node.get(key) if node is not None else None
        return node.get_dict() if node is not None else {}

    opt, path, tsopt, irc = (
        settings("opt", "settings"),
        settings("path", "settings"),
        settings("tsopt", "tsopt", "settings"),
        settings("irc", "settings"),
    )
    out = {
        "route": inputs["route"].value if "route" in inputs else Route.AUTO.value,
        "optimize_endpoints": inputs["optimize_endpoints"].value if "optimize_endpoints" in inputs else True,
        "run_irc": inputs["run_irc"].value if "run_irc" in inputs else True,
        "refine": inputs["refine"].value if "refine" in inputs else "none",
        "guess_level": inputs["guess"].value if "guess" in inputs else "reference",
        "verify": inputs["verify"].value if "verify" in inputs else DEFAULT_VERIFY,
    }
    if "attempts" in inputs:
        out["attempts"] = inputs["attempts"].get_list()
    if "max_attempts" in inputs:
        out["max_attempts"] = inputs["max_attempts"].value
    if "budget_factor" in inputs:
        out["budget_factor"] = inputs["budget_factor"].value
    for key, source in (
        ("endpoint_opt", opt.get("opt")),
        ("path", path.get("path")),
        ("tsopt", tsopt.get("tsopt")),
        ("sella", tsopt.get("sella")),
        ("freq_hessian", tsopt.get("freq_hessian")),
        ("imaginary_threshold", tsopt.get("imaginary_threshold")),
        ("irc", irc.get("irc")),
    ):
        if source is not None:
            out[key] = source
    return out


class ReactionBatchWorkChain(SubmitOnceMixin, LearnMixin, WorkChain):
    """TS searches for a batch of reactions, throttled, ending with a summary ``Dict``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("reactants", valid_type=orm.StructureData, dynamic=True, validator=validate_molecules)
        spec.input_namespace("products", valid_type=orm.StructureData, dynamic=True, validator=validate_molecules)
        spec.input(
            "max_concurrent",
            valid_type=orm.Int,
            default=lambda: orm.Int(4),
            help="At most this many TS searches (or, packed, jobs) run at once.",
        )
        spec.input(
            "reactions_per_job",
            valid_type=orm.Int,
            default=lambda: orm.Int(1),
            help="1: one hip.ts_search work chain per reaction; more: hip.ts_batch jobs of this many reactions.",
        )
        spec.input(
            "processes_per_job",
            valid_type=orm.Int,
            default=lambda: orm.Int(1),
            help="Packed jobs: run this many of a job's reactions at once, in processes that share the worker's "
            "model (batched predictions); the job asks the scheduler for as many cores.",
        )
        spec.input(
            "pack",
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help="Packed hip.ts_batch jobs even with reactions_per_job 1 (one reaction per job, no stage jobs).",
        )
        spec.input(
            "group_label",
            valid_type=orm.Str,
            required=False,
            help="Put every reaction's TS search into this group (created if missing).",
        )
        spec.input(
            "learn",
            valid_type=orm.Dict,
            required=False,
            validator=validate_learn,
            help="Fine-tune the model on the batch's reference Hessians after every `every` verified reactions "
            "(mode head|end_to_end, epochs, max_minutes); the reactions not yet started get the new model if it "
            "is no worse on the batch's held-out reactions.",
        )
        spec.expose_inputs(TransitionStateWorkChain, namespace="ts_search", exclude=("reactant", "product"))
        spec.inputs.validator = cls.validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_pending)(
                cls.submit_next,
                cls.collect,
                while_(cls.should_learn)(cls.run_finetune, cls.inspect_finetune),
            ),
            cls.results,
        )
        spec.output("summary", valid_type=orm.Dict)
        spec.output_namespace("results", valid_type=orm.Dict, dynamic=True, help="output_parameters per reaction.")
        spec.output_namespace("transition_states", valid_type=orm.StructureData, dynamic=True)
        spec.output("model", valid_type=HipModelData, required=False, help="learn: the model serving at the end.")
        spec.default_output_node = "summary"
        spec.exit_code(410, "ERROR_ALL_REACTIONS_FAILED", message="None of the {n} reactions found a verified TS.")

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        reactants, products = set(value.get("reactants", {})), set(value.get("products", {}))
        if not reactants:
            return "the batch is empty: give at least one reaction (reactants.<name> and products.<name>)"
        if reactants != products:
            return f"every reaction needs a reactant and a product; unpaired: {sorted(reactants ^ products)}"
        for name in sorted(reactants):
            error = validate_pair(value["reactants"][name], value["products"][name])
            if error:
                return f"reaction {name!r}: {error}"
        if value.get("max_concurrent") is not None and value["max_concurrent"].value < 1:
            return "max_concurrent must be at least 1"
        if value.get("processes_per_job") is not None and value["processes_per_job"].value < 1:
            return "processes_per_job must be at least 1"
        per_job = value.get("reactions_per_job")
        if per_job is not None and per_job.value < 1:
            return "reactions_per_job must be at least 1"
        error = learn_input_error(value)
        if error:
            return error
        pack = value.get("pack")
        if (per_job is not None and per_job.value > 1) or (pack is not None and pack.value):
            search = value.get("ts_search", {})
            if search.get("run_dft") is not None and search["run_dft"].value:
                return "DFT verification runs per reaction: use reactions_per_job 1 with run_dft"
            if not search.get("path", {}).get("code"):
                return "packed jobs take code, parameters, model and options from ts_search.path: give its code"
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
        reactions_per_job: int = 1,
        processes_per_job: int = 1,
    ):
        """A batch builder: every reaction gets ``hip.ts_search`` inputs from the same protocol
        (packed jobs, ``reactions_per_job`` > 1, take the same settings)."""
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
        builder.reactions_per_job = orm.Int(reactions_per_job)
        builder.processes_per_job = orm.Int(processes_per_job)
        if group_label:
            builder.group_label = orm.Str(group_label)
        return builder

    def setup(self):
        self.ctx.pending = sorted(self.inputs.reactants)
        self.ctx.packed = self.inputs.reactions_per_job.value > 1 or self.inputs.pack.value
        self.ctx.searches = []
        self.ctx.jobs = []
        self.ctx.attempts = {}  # reaction -> packed jobs it was in
        self.ctx.group = None
        if "group_label" in self.inputs:
            self.ctx.group, _ = orm.Group.collection.get_or_create(self.inputs.group_label.value)
        self._setup_learn()

    def has_pending(self):
        return bool(self.ctx.pending)

    def submit_next(self):
        if self.ctx.packed:
            return self._submit_jobs()
        base = self._search_inputs(AttributeDict(self.exposed_inputs(TransitionStateWorkChain, namespace="ts_search")))
        chunk, self.ctx.pending = (
            self.ctx.pending[: self.inputs.max_concurrent.value],
            self.ctx.pending[self.inputs.max_concurrent.value :],
        )
        for name in chunk:
            inputs = AttributeDict(base)
            inputs.reactant, inputs.product = self.inputs.reactants[name], self.inputs.products[name]
            inputs.metadata = {"label": name, "call_link_label": f"ts_search_{link_label(name)}"}
            node = self.submit(TransitionStateWorkChain, **inputs)
            self.to_context(searches=append_(node))
            self.report(f"{name}: TransitionStateWorkChain<{node.pk}>")
        return None

    def _submit_jobs(self):
        """Up to ``max_concurrent`` ``hip.ts_batch`` jobs of ``reactions_per_job`` reactions each."""
        search = self.exposed_inputs(TransitionStateWorkChain, namespace="ts_search")
        path = search["path"]
        settings = packed_settings(search)
        per_job, max_jobs = self.inputs.reactions_per_job.value, self.inputs.max_concurrent.value
        # the stage's scheduler options (resources, GPU requests, walltime, ...), not its parser
        options = {k: v for k, v in path.get("metadata", {}).get("options", {}).items() if k != "parser_name"}
        for _ in range(max_jobs):
            if not self.ctx.pending:
                break
            names, self.ctx.pending = self.ctx.pending[:per_job], self.ctx.pending[per_job:]
            index = len(self.ctx.jobs)
            inputs = AttributeDict(
                {
                    "code": path["code"],
                    "settings": orm.Dict(settings),
                    "reactants": {name: self.inputs.reactants[name] for name in names},
                    "products": {name: self.inputs.products[name] for name in names},
                    "metadata": {
                        "label": f"ts_batch {index}: {names[0]} .. {names[-1]}",
                        "call_link_label": f"ts_batch_{index}",
                        "options": self._job_options(options, len(names)),
                    },
                }
            )
            for key in ("parameters", "model"):
                if key in path:
                    inputs[key] = path[key]
            for name in names:
                self.ctx.attempts[name] = self.ctx.attempts.get(name, 0) + 1
            node = self.submit(HipTSBatchCalculation, **inputs)
            self.ctx.jobs.append(node.uuid)
            self.to_context(**{f"job_{index}": node})
            self.report(f"HipTSBatchCalculation<{node.pk}>: {len(names)} reactions ({', '.join(names)})")
        return None

    def _job_options(self, options: dict, n_reactions: int) -> dict:
        """The stage's scheduler options plus, for parallel reactions, ``processes`` and as many cores."""
        processes = min(self.inputs.processes_per_job.value, n_reactions)
        if processes == 1:
            return options
        resources = dict(options.get("resources") or {"num_machines": 1})
        resources["num_mpiprocs_per_machine"] = max(processes, resources.get("num_mpiprocs_per_machine", 1))
        return {**options, "processes": processes, "resources": resources}

    def collect(self):
        if self.ctx.packed:
            done = self._packed_results()[0]
            if self.ctx.group is not None:
                self.ctx.group.add_nodes([orm.load_node(uuid) for uuid in self.ctx.jobs])
            missing = [
                name
                for name in sorted(self.inputs.reactants)
                if name not in done and name not in self.ctx.pending and self.ctx.attempts.get(name, 0) > 0
            ]
            retry = [name for name in missing if self.ctx.attempts[name] < MAX_JOB_ATTEMPTS]
            if retry:
                self.report(f"packing again the {len(retry)} reaction(s) a job did not finish: {', '.join(retry)}")
                self.ctx.pending = sorted(set(self.ctx.pending) | set(retry))
            return
        if self.ctx.group is not None:
            done = [node for node in self.ctx.searches if node.is_terminated]
            self.ctx.group.add_nodes(done)

    def _packed_results(self) -> tuple[dict[str, orm.Dict], dict[str, orm.StructureData]]:
        """Each reaction's result (and TS) from the finished jobs; the latest job wins."""
        results, structures = {}, {}
        for uuid in self.ctx.jobs:
            node = orm.load_node(uuid)
            for link in node.base.links.get_outgoing(link_label_filter="results__%").all():
                results[link.link_label.split("__", 1)[1]] = link.node
            for link in node.base.links.get_outgoing(link_label_filter="transition_states__%").all():
                structures[link.link_label.split("__", 1)[1]] = link.node
        return results, structures

    def results(self):
        names = sorted(self.inputs.reactants)
        if self.ctx.packed:
            results, structures = self._packed_results()
        else:
            results, structures = {}, {}
            for node in self.ctx.searches:
                if "output_parameters" in node.outputs:
                    results[link_label(node.label)] = node.outputs.output_parameters
                if "ts" in node.outputs:
                    structures[link_label(node.label)] = node.outputs.ts
        for name, node in results.items():
            self.out(f"results.{name}", node)
        for name, node in structures.items():
            self.out(f"transition_states.{name}", node)
        labels = orm.List([link_label(name) for name in names])
        if self.ctx.packed:
            jobs = [orm.load_node(uuid) for uuid in self.ctx.jobs]
            summaries = {
                f"job_{k}": job.outputs.output_parameters
                for k, job in enumerate(jobs)
                if "output_parameters" in job.outputs
            }
            summary = summarize_jobs(labels, **summaries, metadata={"call_link_label": "summary"})
        else:
            learn = {"learn_rounds": orm.List(self.ctx.rounds)} if self.ctx.learn else {}
            summary = summarize_batch(labels, **learn, **results, metadata={"call_link_label": "summary"})
        self.out("summary", summary)
        if self.ctx.learn:
            self.out("model", orm.load_node(self.ctx.model))
        self.report(f"{summary['n_success']} of {summary['n_reactions']} reactions succeeded")
        if summary["n_success"] == 0:
            return self.exit_codes.ERROR_ALL_REACTIONS_FAILED.format(n=summary["n_reactions"])
        return None
