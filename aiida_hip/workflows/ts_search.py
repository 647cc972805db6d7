"""``hip.ts_search``: one reaction, endpoints -> path -> TS optimisation (+ freq) -> IRC/QRC + endpoint check.

Every stage is its own CalcJob (the TS optimisation inside ``hip.base``, which restarts it). The search walks
an attempt plan (:mod:`aiida_hip.common.attempts`, the same one the pipeline walks): a TS that does not
converge, has the wrong imaginary count or whose IRC is not the intended reaction ends one *attempt*, and the
next one tries another guess (the second maximum of the path, the path between the given ends), the
Hessian-free search, the surface's exact Hessians or the other route, until one verifies, the plan is spent or
the budget is. Each attempt's CalcJobs appear in provenance with their own link labels; outputs are attached
whatever the outcome, so nothing computed is lost (each output is the latest one any attempt produced for that
stage); ``output_parameters`` and the exit code say where the search stopped and list every attempt, skipped
ones with the reason.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_

from ..calcjobs import (
    HipDFTCalculation,
    HipIRCCalculation,
    HipOptCalculation,
    HipPathCalculation,
    validate_molecule,
    validate_pair,
)
from ..calcjobs.base import level_of
from ..calcjobs.stages import validate_elements
from ..common import attempts as plan
from ..common import exit_codes
from ..common.exit_codes import OUTCOME_EXIT_CODES, outcome_of
from ..common.geometry import aligned_rmsd
from ..common.level import Level
from ..common.types import DEFAULT_VERIFY, VERIFY_METHODS, Calculator, HessianMode, Outcome, Route, choices
from ..data import HipModelData
from .base import HipTSOptBaseWorkChain
from .functions import reaction_thermochemistry
from .protocols import FOLDER, available_protocols, get_protocol_inputs
from .resume import SubmitOnceMixin
from .two_level import PRE_OPT_SETTINGS, TwoLevelMixin, validate_guess, validate_refine

WORKER_FAILURE_STATUSES = {code.status for code in exit_codes.WORKER_FAILURES}


def _positive(value: orm.Float, _) -> str | None:
    if value is not None and value.value <= 0:
        return f"temperature must be positive (K), got {value.value}"
    return None


def validate_route(value: orm.Str, _) -> str | None:
    if value is not None and value.value not in choices(Route):
        return f"route must be one of {choices(Route)}, got {value.value!r}"
    return None


def validate_verify(value: orm.Str, _) -> str | None:
    if value is not None and value.value not in VERIFY_METHODS:
        return f"verify must be one of {list(VERIFY_METHODS)}, got {value.value!r}"
    return None


def validate_budget(value: orm.Float, _) -> str | None:
    if value is not None and not value.value > 0:
        return f"budget_factor must be positive, got {value.value}"
    return None


def validate_attempts(value: orm.List, _) -> str | None:
    if value is None:
        return None
    try:
        plan.attempt_plan(Route.AUTO.value, value.get_list())
    except plan.AttemptError as exc:
        return str(exc)
    return None


def worker_failure(calc) -> Outcome | None:
    """``invalid_input`` or ``error`` when a stage never produced a usable result (nothing to go on with)."""
    if not calc.is_finished:
        return Outcome.ERROR
    if calc.exit_status in WORKER_FAILURE_STATUSES:
        return Outcome.INVALID_INPUT if outcome_of(calc.exit_status) is Outcome.INVALID_INPUT else Outcome.ERROR
    return None


@calcfunction
def summarize_ts_search(**kwargs) -> orm.Dict:
    """The reaction's result from the stages' parameters: status, barriers, imaginary mode, IRC verdict."""
    get = {
        key: node.get_dict() if isinstance(node, orm.Dict) else node.value
        for key, node in kwargs.items()
        if not isinstance(node, orm.StructureData)
    }
    tsopt = get.get("tsopt_parameters") or {}
    irc = get.get("irc_parameters") or {}
    freq = tsopt.get("freq") or {}
    e_ts = tsopt.get("energy_ev")
    summary = {
        "status": get["status"],
        "message": get.get("message", ""),
        "route": get.get("route"),
        "attempts": get.get("attempts", []),
        "model_hessians_used": any(a.get("model_hessians_used") for a in get.get("attempts", [])),
        "ts_found": Outcome(get["status"]).ts_found,
        "n_imaginary": freq.get("n_imaginary"),
        "imaginary_frequency_cm1": freq.get("imaginary_frequency_cm1"),
        "ts_energy_ev": e_ts,
        "irc_intended": (irc.get("endpoints") or {}).get("verdict") == "intended",
        "irc_verdict": (irc.get("endpoints") or {}).get("verdict"),
        "n_tsopt_steps": (tsopt.get("tsopt") or {}).get("n_cycles"),
        "model": tsopt.get("model"),
        "dft": {k: v for k, v in (get.get("dft_parameters") or {}).items() if k not in ("level", "model")} or None,
        "dft_verified": (get.get("dft_parameters") or {}).get("verified"),
        "level": tsopt.get("level"),
    }
    summary["refine"] = get.get("refine")
    summary["reference_cost"] = get.get("reference_cost")
    if "ts_hip" in kwargs and "ts_structure" in kwargs:
        hip, ts = (np.array([s.position for s in kwargs[k].sites]) for k in ("ts_hip", "ts_structure"))
        summary["hip_ts_rmsd_a"] = aligned_rmsd(hip, ts) if len(hip) == len(ts) else None
    thermo = get.get("thermochemistry") or {}
    for direction in ("forward", "reverse"):
        for key in (f"gibbs_barrier_{direction}_ev", f"rate_{direction}_per_s"):
            summary[key] = thermo.get(key)
    for role, key in (("reactant", "barrier_forward_ev"), ("product", "barrier_reverse_ev")):
        end = get.get(f"{role}_parameters") or {}
        e_end = end.get("energy_ev") if end.get("same_molecule", True) else None
        summary[f"{role}_energy_ev"] = e_end
        summary[key] = e_ts - e_end if (e_ts is not None and e_end is not None) else None
    return orm.Dict(summary)


class TransitionStateWorkChain(TwoLevelMixin, SubmitOnceMixin, WorkChain):
    """Find and verify the transition state of reactant -> product (atoms in the same order)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("reactant", valid_type=orm.StructureData, validator=validate_molecule)
        spec.input("product", valid_type=orm.StructureData, validator=validate_molecule)
        spec.input(
            "route",
            valid_type=orm.Str,
            default=lambda: orm.Str(Route.AUTO.value),
            validator=validate_route,
            help="pysisyphus (GSM -> RS-P-RFO -> EulerPC), sella (geodesic -> Sella -> Sella IRC) or auto "
            "(Sella, then pysisyphus if Sella did not verify a TS).",
        )
        spec.input(
            "refine",
            valid_type=orm.Str,
            default=lambda: orm.Str("none"),
            validator=validate_refine,
            help="Two-level search with a HIP level: xtb or dft refines the HIP TS on that surface with HIP "
            "Hessians, judges it with one reference Hessian, minimises the ends and follows the IRC there; "
            "none keeps the whole search at the given level.",
        )
        spec.input(
            "guess",
            valid_type=orm.Str,
            default=lambda: orm.Str("reference"),
            validator=validate_guess,
            help="Two-level search: where the path and TS guess come from: reference (single points at the "
            "refinement level) or hip (the HIP surface and a TS pre-optimisation there, then a refinement).",
        )
        spec.input("optimize_endpoints", valid_type=orm.Bool, default=lambda: orm.Bool(True))
        spec.input(
            "temperature",
            valid_type=orm.Float,
            default=lambda: orm.Float(298.15),
            validator=_positive,
            help="Temperature (K) of the thermochemistry and Eyring rates of a verified TS.",
        )
        spec.input("run_irc", valid_type=orm.Bool, default=lambda: orm.Bool(True))
        cls._define_attempt_inputs(spec)
        cls._define_stage_inputs(spec)
        spec.inputs.validator = cls.validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_optimize_endpoints)(cls.run_endpoints, cls.inspect_endpoints),
            while_(cls.next_attempt)(
                cls.run_path,
                cls.inspect_path,
                if_(cls.route_alive)(cls.run_tsopt, cls.inspect_tsopt),
                if_(cls.should_refine)(cls.run_refine, cls.inspect_refine),
                if_(cls.should_run_irc)(cls.run_irc, cls.inspect_irc),
            ),
            if_(cls.should_run_dft)(cls.run_dft, cls.inspect_dft),
            cls.results,
        )
        cls._define_outputs(spec)
        spec.default_output_node = "output_parameters"
        exit_codes.declare(spec, OUTCOME_EXIT_CODES.values())

    @classmethod
    def _define_attempt_inputs(cls, spec) -> None:
        """How the search verifies a TS and which attempts it makes (:mod:`aiida_hip.common.attempts`)."""
        spec.input(
            "verify",
            valid_type=orm.Str,
            default=lambda: orm.Str(DEFAULT_VERIFY),
            validator=validate_verify,
            help="How a TS is verified: irc (the IRC both ways, its ends minimised) or qrc (both sides of the TS "
            "mode minimised from the judging Hessian: no profile, a fraction of the cost).",
        )
        spec.input(
            "attempts",
            valid_type=orm.List,
            required=False,
            validator=validate_attempts,
            help="The attempts, route:guess:hessian each (aiida_hip.common.attempts); default: the plan of route. "
            "A TS that fails its frequencies or verification, or does not converge, ends one attempt.",
        )
        spec.input(
            "max_attempts",
            valid_type=orm.Int,
            required=False,
            help="The most attempts that run (skipped repeats do not count); default: the whole plan.",
        )
        spec.input(
            "budget_factor",
            valid_type=orm.Float,
            default=lambda: orm.Float(plan.DEFAULT_BUDGET_FACTOR),
            validator=validate_budget,
            help="No new attempt once the attempts spent this many times the first one's reference cost.",
        )

    @classmethod
    def _define_stage_inputs(cls, spec) -> None:
        """Each stage's CalcJob (or restart work chain) inputs, exposed in its own namespace."""
        spec.expose_inputs(
            HipOptCalculation,
            namespace="opt",
            exclude=("structure",),
            namespace_options={"required": False, "populate_defaults": False, "help": "Endpoint minimisations."},
        )
        spec.expose_inputs(HipPathCalculation, namespace="path", exclude=("reactant", "product"))
        spec.expose_inputs(HipTSOptBaseWorkChain, namespace="tsopt", exclude=("tsopt.ts_guess", "tsopt.tangent"))
        spec.expose_inputs(
            HipIRCCalculation,
            namespace="irc",
            exclude=("ts", "hessian", "reactant", "product"),
            namespace_options={"required": False, "populate_defaults": False},
        )
        spec.input(
            "run_dft",
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help="Verify a found TS with DFT (PySCF analytic Hessian): one imaginary mode, RMS force < 2e-3 Ha/Bohr.",
        )
        spec.expose_inputs(
            HipDFTCalculation,
            namespace="dft",
            exclude=("structure",),
            namespace_options={"required": False, "populate_defaults": False},
        )

    @classmethod
    def _define_outputs(cls, spec) -> None:
        spec.output(
            "output_parameters", valid_type=orm.Dict, help="Status, barriers, imaginary frequency, IRC verdict."
        )
        spec.output("ts", valid_type=orm.StructureData, required=False)
        spec.output(
            "ts_hip", valid_type=orm.StructureData, required=False, help="The HIP TS the two-level search refined."
        )
        spec.output("ts_hessian", valid_type=orm.ArrayData, required=False)
        spec.output("reactant", valid_type=orm.StructureData, required=False, help="Reactant as the search used it.")
        spec.output("product", valid_type=orm.StructureData, required=False, help="Product as the search used it.")
        spec.output("path", valid_type=orm.TrajectoryData, required=False)
        spec.output("irc", valid_type=orm.TrajectoryData, required=False)
        spec.output("forward_end", valid_type=orm.StructureData, required=False)
        spec.output("backward_end", valid_type=orm.StructureData, required=False)
        spec.output("dft_hessian", valid_type=orm.ArrayData, required=False, help="DFT Hessian of the TS (eV/A^2).")
        spec.output(
            "thermochemistry",
            valid_type=orm.Dict,
            required=False,
            help="RRHO/quasi-RRHO G, H, S, ZPE of reactant, TS, product; Gibbs barriers; Eyring rates (1/s).",
        )

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        error = validate_pair(value.get("reactant"), value.get("product"))
        if error:
            return error
        if value.get("optimize_endpoints", orm.Bool(True)).value and not value.get("opt", {}).get("code"):
            return "optimize_endpoints is on: give opt.code (or use get_builder_from_protocol)"
        if value.get("run_irc", orm.Bool(True)).value and not value.get("irc", {}).get("code"):
            return "run_irc is on: give irc.code (or use get_builder_from_protocol)"
        if value.get("run_dft", orm.Bool(False)).value and not value.get("dft", {}).get("code"):
            return "run_dft is on: give dft.code (or use get_builder_from_protocol)"
        path = value.get("path", {})
        return validate_elements(path.get("model"), value.get("reactant"), level_of(path.get("parameters")))

    @classmethod
    def get_protocol_filepath(cls):
        return FOLDER / "ts_search.yaml"

    @classmethod
    def get_available_protocols(cls) -> dict[str, str]:
        return available_protocols("ts_search")

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        reactant: orm.StructureData,
        product: orm.StructureData,
        protocol: str | None = None,
        overrides: dict | None = None,
        model: HipModelData | None = None,
        options: dict | None = None,
    ):
        """A filled builder: ``fast`` / ``moderate`` / ``precise`` criteria, one code for every stage.

        ``model`` defaults to the shipped checkpoint when the level uses HIP; ``options`` (scheduler
        resources, GPU requests, ...) go to every CalcJob's ``metadata.options`` untouched.
        """
        inputs = get_protocol_inputs("ts_search", protocol, overrides)
        level = inputs.pop("parameters")
        if model is None and level_of(orm.Dict(level)).uses_model:
            model = HipModelData.from_checkpoint()
        builder = cls.get_builder()
        builder.reactant, builder.product = reactant, product
        builder.route = orm.Str(inputs["route"])
        builder.refine = orm.Str(inputs.get("refine", "none"))
        builder.guess = orm.Str(inputs.get("guess", "reference"))
        builder.optimize_endpoints = orm.Bool(inputs["optimize_endpoints"])
        builder.run_irc = orm.Bool(inputs["run_irc"])
        builder.verify = orm.Str(inputs.get("verify", DEFAULT_VERIFY))
        if inputs.get("attempts"):
            builder.attempts = orm.List(list(inputs["attempts"]))
        if inputs.get("max_attempts"):
            builder.max_attempts = orm.Int(inputs["max_attempts"])
        if inputs.get("budget_factor"):
            builder.budget_factor = orm.Float(inputs["budget_factor"])
        builder.run_dft = orm.Bool(inputs["run_dft"])
        # resources default to one process on one machine unless the caller says otherwise
        metadata = (
            {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, **options}} if options else {}
        )

        def fill(namespace, block: dict, with_model: bool = True) -> None:
            namespace.code = code
            namespace.parameters = orm.Dict(level)
            namespace.settings = orm.Dict(block.get("settings", {}))
            if model is not None and with_model:
                namespace.model = model
            if metadata:
                namespace.metadata = metadata

        fill(builder.opt, inputs["opt"])
        fill(builder.path, inputs["path"])
        fill(builder.tsopt.tsopt, inputs["tsopt"])
        builder.tsopt.max_iterations = orm.Int(inputs["tsopt"].get("max_iterations", 4))
        fill(builder.irc, inputs["irc"])
        if inputs["run_dft"]:
            fill(builder.dft, inputs["dft"], with_model=False)  # PySCF only
        return builder

    # --- outline --------------------------------------------------------------------------------------------
    def setup(self):
        given = self.inputs.attempts.get_list() if "attempts" in self.inputs else None
        self.ctx.plan = [a.key for a in plan.attempt_plan(self.inputs.route.value, given)]
        self.ctx.n_run = 0
        self.ctx.paths = {}  # Attempt.path_key -> the path CalcJob's uuid, reused by later attempts
        self.ctx.route = None
        self.ctx.attempt = None
        self.ctx.cost_at_start = 0
        self.ctx.attempts = []
        self.ctx.status, self.ctx.message = Outcome.PATH_FAILED.value, ""
        self.ctx.reactant, self.ctx.product = self.inputs.reactant, self.inputs.product
        self.ctx.endpoint_parameters = {}
        self.ctx.endpoint_hessians = {}
        self.ctx.stage_nodes = {}  # the latest node of each stage that produced something
        self._setup_levels(level_of(self.inputs.path.get("parameters")))

    def _label(self, stage: str) -> dict:
        name = self.node.label or f"ts_search-{self.node.pk}"
        suffix = "" if self.ctx.route is None else self._suffix()
        return {"label": f"{name}:{stage}", "call_link_label": f"{stage}{suffix}"}

    def _stage_inputs(self, process, namespace: str, stage: str) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(process, namespace=namespace))
        if "settings" in inputs and self.ctx.route and stage in ("path", "irc"):
            inputs.settings = orm.Dict(inputs.settings.get_dict() | {"route": self.ctx.route})
        inputs.metadata = {**inputs.get("metadata", {}), **self._label(stage)}
        return inputs

    def should_optimize_endpoints(self):
        return self.inputs.optimize_endpoints.value

    def run_endpoints(self):
        calcs = {}
        for role in ("reactant", "product"):
            inputs = self._stage_inputs(HipOptCalculation, "opt", f"opt_{role}")
            inputs = self._level_inputs(inputs, "ends")
            inputs.structure = self.inputs[role]
            calcs[f"opt_{role}"] = self.submit(HipOptCalculation, **inputs)
        self.report(f"minimising reactant<{calcs['opt_reactant'].pk}> and product<{calcs['opt_product'].pk}>")
        return ToContext(**calcs)

    def inspect_endpoints(self):
        for role in ("reactant", "product"):
            calc = self.ctx[f"opt_{role}"]
            failure = worker_failure(calc)
            if failure is not None:
                self.ctx.status, self.ctx.message = failure.value, f"{role} minimisation: {calc.exit_message}"
                self.ctx.plan = []
                return
            parameters = calc.outputs.output_parameters
            self.ctx.endpoint_parameters[role] = parameters
            if "structure" in calc.outputs and parameters.get("same_molecule", False):
                self.ctx[role] = calc.outputs.structure
                if calc.is_finished_ok and "hessian" in calc.outputs:
                    self.ctx.endpoint_hessians[role] = calc.outputs.hessian
                if not calc.is_finished_ok:
                    self.report(f"{role} minimisation ended with '{calc.exit_message}'; using its last geometry")
            else:
                self.report(f"{role} minimisation changed the molecule or failed; keeping the input geometry")

    def _ends_moved(self) -> bool:
        """The minimised ends differ from the given ones (a path between the given ones is a new guess)."""

        def positions(node):
            return np.array([site.position for site in node.sites])

        return any(
            aligned_rmsd(positions(self.ctx[role]), positions(self.inputs[role])) > 0.05
            for role in ("reactant", "product")
        )

    def next_attempt(self):
        """The next attempt of the plan that repeats none already made (skipped ones recorded with why)."""
        if self.ctx.status == Outcome.SUCCESS and self.ctx.attempts:
            return False
        if self.ctx.attempts and not plan.retry_after(Outcome(self.ctx.status)):
            return False
        limit = self.inputs.max_attempts.value if "max_attempts" in self.inputs else None
        moved = self._ends_moved()
        self._close_attempt()
        while self.ctx.plan:
            attempt = plan.Attempt.parse(self.ctx.plan.pop(0))
            index = len(self.ctx.attempts) + 1
            reason = plan.skip_reason(attempt, self.ctx.attempts, moved)
            if reason is not None:
                self.ctx.attempts.append(plan.attempt_record(attempt, index, reason))
                continue
            if limit is not None and self.ctx.n_run >= limit:
                return False
            if (reason := plan.over_budget(self.ctx.attempts, self.inputs.budget_factor.value)) is not None:
                self.ctx.attempts.append(plan.attempt_record(attempt, index, reason))
                return False
            if self.ctx.n_run:
                self.report(f"attempt {self.ctx.n_run} ended with {self.ctx.status}; trying {attempt.key}")
            self.ctx.n_run += 1
            self.ctx.route, self.ctx.attempt = attempt.route, attempt.key
            self.ctx.alive = True
            self.ctx.attempts.append(plan.attempt_record(attempt, index))
            self.ctx.cost_at_start = self._gradient_equivalents()
            return True
        return False

    def _gradient_equivalents(self) -> int:
        cost = self._reference_cost()
        return cost["gradients"] + 6 * len(self.inputs.reactant.sites) * cost["hessians"]

    def _close_attempt(self) -> None:
        """The reference cost of the attempt that just ended, on its record."""
        ran = [a for a in self.ctx.attempts if not a.get("skipped")]
        if ran and "reference_gradient_equivalents" not in ran[-1]:
            ran[-1]["reference_gradient_equivalents"] = self._gradient_equivalents() - self.ctx.cost_at_start

    def _fail(self, outcome: Outcome, message: str) -> None:
        """This attempt stops here; a stage that never ran on bad input stops every attempt."""
        self.ctx.status, self.ctx.message, self.ctx.alive = outcome.value, message, False
        self.ctx.attempts[-1] |= {"status": outcome.value, "message": (message or "")[:300]}
        if outcome is Outcome.INVALID_INPUT:
            self.ctx.plan = []

    def _succeed(self, message: str) -> None:
        self.ctx.status, self.ctx.message = Outcome.SUCCESS.value, message
        self.ctx.attempts[-1] |= {"status": Outcome.SUCCESS.value, "message": (message or "")[:300]}

    def _exact_step_cap(self) -> int | None:
        if self._current().hessian != "exact":
            return None
        ran = [a for a in self.ctx.attempts if not a.get("skipped")][:-1]  # the attempts before this one
        return plan.exact_step_cap(ran, self.inputs.budget_factor.value, len(self.inputs.reactant.sites))

    def _current(self) -> plan.Attempt:
        return plan.Attempt.parse(self.ctx.attempt)

    def _suffix(self) -> str:
        """Stage link labels: the first attempt of a route keeps the route's names, later ones add the index."""
        route_suffix = "" if self.ctx.route == Route.PYSISYPHUS else f"_{self.ctx.route}"
        earlier = [a for a in self.ctx.attempts[:-1] if a["route"] == self.ctx.route and not a.get("skipped")]
        return route_suffix + (f"_a{self.ctx.attempts[-1]['index']}" if earlier else "")

    def route_alive(self):
        return self.ctx.alive

    def run_path(self):
        attempt = self._current()
        key = attempt.path_key
        if key in self.ctx.paths:  # the same path as an earlier attempt: no new CalcJob
            self.ctx.path_calc = orm.load_node(self.ctx.paths[key])
            return None
        inputs = self._stage_inputs(HipPathCalculation, "path", "path")
        inputs = self._level_inputs(inputs, "hip" if self.ctx.hip_guess else "path")
        if attempt.guess == "second":
            settings = inputs.settings.get_dict()
            inputs.settings = orm.Dict(
                settings | {"path": settings.get("path", {}) | {"guess_rank": attempt.guess_rank}}
            )
        ends = self.inputs if attempt.guess == "given" else self.ctx
        inputs.reactant, inputs.product = ends.reactant, ends.product
        node = self.submit(HipPathCalculation, **inputs)
        self.ctx.paths[key] = node.uuid
        self.report(f"path ({attempt.key}) <{node.pk}>")
        return ToContext(path_calc=node)

    def inspect_path(self):
        calc = self.ctx.path_calc
        if not calc.is_finished_ok or "ts_guess" not in calc.outputs:
            self._fail(worker_failure(calc) or Outcome.PATH_FAILED, calc.exit_message or "no TS guess")
            return
        self.ctx.stage_nodes["path"] = calc

    def _attempt_level(self, inputs: AttributeDict) -> AttributeDict:
        """The TS optimisation's level with the attempt's Hessians: the level's, none, or the surface's exact."""
        hessian = self._current().hessian
        if hessian == "level" or inputs.get("parameters") is None:
            return inputs
        level = dict(inputs.parameters.get_dict())
        mode = HessianMode.NONE.value if hessian == "none" else Level(**level).exact_hessian
        inputs.parameters = orm.Dict(level | {"hessian": mode})
        if not Level(**(level | {"hessian": mode})).uses_model:
            inputs.pop("model", None)
        return inputs

    def run_tsopt(self):
        inputs = AttributeDict(self.exposed_inputs(HipTSOptBaseWorkChain, namespace="tsopt"))
        inputs.tsopt.ts_guess = self.ctx.path_calc.outputs.ts_guess
        if "tangent" in self.ctx.path_calc.outputs:
            inputs.tsopt.tangent = self.ctx.path_calc.outputs.tangent
        settings = inputs.tsopt.settings.get_dict() if "settings" in inputs.tsopt else {}
        settings |= {"route": self.ctx.route}
        if self.ctx.hip_guess:  # the HIP stage of a two-level search only explores
            settings = {**settings, **PRE_OPT_SETTINGS, "tsopt": settings.get("tsopt", {}) | PRE_OPT_SETTINGS["tsopt"]}
        elif self.ctx.refine:  # straight on the reference surface, judged by one reference Hessian
            settings |= {"freq_hessian": "exact"}
            inputs.tsopt = self._level_inputs(inputs.tsopt, "refine")
        if not self.ctx.hip_guess:
            inputs.tsopt = self._attempt_level(inputs.tsopt)
            cap = self._exact_step_cap()
            if cap is not None:  # the budget bounds what an exact-Hessian attempt may spend: one run, capped
                sella, tsopt = settings.get("sella", {}), settings.get("tsopt", {})
                settings["sella"] = sella | {"max_steps": min(sella.get("max_steps", cap), cap)}
                settings["tsopt"] = tsopt | {"max_cycles": min(tsopt.get("max_cycles", cap), cap)}
                inputs.max_iterations = orm.Int(1)
                self.ctx.attempts[-1]["max_steps"] = cap
        inputs.tsopt.settings = orm.Dict(settings)
        inputs.metadata = self._label("tsopt")
        node = self.submit(HipTSOptBaseWorkChain, **inputs)
        self.report(f"TS optimisation ({self.ctx.attempt}) <{node.pk}>")
        return ToContext(tsopt_wc=node)

    def inspect_tsopt(self):
        wc = self.ctx.tsopt_wc
        calcs = [n for n in wc.called if isinstance(n, orm.CalcJobNode)]
        last = max(calcs, key=lambda n: n.ctime) if calcs else None
        if self._keep_hip_ts(last):
            return
        self._inspect_ts(wc, last)

    def inspect_refine(self):
        wc = self.ctx.tsopt_wc
        calcs = [n for n in wc.called if isinstance(n, orm.CalcJobNode)]
        self._inspect_ts(wc, max(calcs, key=lambda n: n.ctime) if calcs else None)

    def _inspect_ts(self, wc, last) -> None:
        """The TS optimisation's outcome from its work chain and last CalcJob."""
        if last is not None and "ts" in last.outputs:
            self.ctx.stage_nodes["tsopt"] = last
        if last is not None and "output_parameters" in last.outputs:
            params = last.outputs.output_parameters.get_dict()
            level = Level(**params["level"]) if params.get("level") else None
            tsopt = params.get("tsopt") or {}
            if level is not None:
                self.ctx.attempts[-1] |= plan.hessian_use(level, tsopt.get("hessian_feed"))
            self.ctx.attempts[-1]["n_tsopt_steps"] = tsopt.get("n_cycles")
        if wc.is_finished_ok:
            if not self.inputs.run_irc.value:
                self._succeed("TS found and characterised (IRC not requested)")
            return
        message = (last.exit_message if last is not None else None) or wc.exit_message or ""
        if wc.exit_status == exit_codes.CONVERGED_TO_MINIMUM.status:
            self._fail(Outcome.WRONG_IMAGINARY_COUNT, message)
            return
        outcome = (worker_failure(last) or outcome_of(last.exit_status)) if last is not None else None
        self._fail(outcome if outcome not in (None, Outcome.SUCCESS) else Outcome.NOT_CONVERGED, message)

    def should_run_irc(self):
        return self.ctx.alive and self.inputs.run_irc.value

    def run_irc(self):
        inputs = self._stage_inputs(HipIRCCalculation, "irc", "irc")
        inputs = self._level_inputs(inputs, "irc")
        inputs.settings = orm.Dict(inputs.settings.get_dict() | {"verify": self.inputs.verify.value})
        tsopt = self.ctx.tsopt_wc.outputs
        inputs.ts, inputs.hessian = tsopt.ts, tsopt.hessian
        inputs.reactant, inputs.product = self.ctx.reactant, self.ctx.product
        node = self.submit(HipIRCCalculation, **inputs)
        self.report(f"{self.inputs.verify.value.upper()} ({self.ctx.attempt}) <{node.pk}>")
        return ToContext(irc_calc=node)

    def inspect_irc(self):
        calc = self.ctx.irc_calc
        if "forward_end" in calc.outputs or "irc" in calc.outputs:
            self.ctx.stage_nodes["irc"] = calc
        outcome = worker_failure(calc) or outcome_of(calc.exit_status) or Outcome.IRC_INCOMPLETE
        if outcome is Outcome.SUCCESS:
            self._succeed(calc.outputs.output_parameters.get("message", ""))
        else:
            self._fail(outcome, calc.exit_message or "")

    def should_run_dft(self):
        return self.inputs.run_dft.value and self.ctx.status == Outcome.SUCCESS and "tsopt" in self.ctx.stage_nodes

    def run_dft(self):
        inputs = self._stage_inputs(HipDFTCalculation, "dft", "dft")
        inputs.structure = self.ctx.stage_nodes["tsopt"].outputs.ts
        node = self.submit(HipDFTCalculation, **inputs)
        self.report(f"DFT verification <{node.pk}>")
        return ToContext(dft_calc=node)

    def inspect_dft(self):
        calc = self.ctx.dft_calc
        if "output_parameters" in calc.outputs:
            self.ctx.stage_nodes["dft"] = calc
        self.report(f"DFT verification: {calc.exit_message or 'verified'}")

    def _thermochemistry(self) -> orm.Dict | None:
        """For a verified TS whose ends are minima with frequencies: the RRHO calcfunction's ``Dict``."""
        tsopt = self.ctx.stage_nodes.get("tsopt")
        hessians = self.ctx.endpoint_hessians
        if self.ctx.status != Outcome.SUCCESS or tsopt is None or "hessian" not in tsopt.outputs or len(hessians) < 2:
            return None
        nodes = {"ts_structure": tsopt.outputs.ts, "ts_hessian": tsopt.outputs.hessian}
        nodes["ts_parameters"] = tsopt.outputs.output_parameters
        for role in ("reactant", "product"):
            nodes[f"{role}_structure"] = self.ctx[role]
            nodes[f"{role}_hessian"] = hessians[role]
            nodes[f"{role}_parameters"] = self.ctx.endpoint_parameters[role]
        if any(nodes[f"{role}_parameters"].get("energy_ev") is None for role in ("reactant", "ts", "product")):
            return None
        return reaction_thermochemistry(
            self.inputs.temperature, **nodes, metadata={"call_link_label": "thermochemistry"}
        )

    def _reference_cost(self) -> dict:
        """Reference-level gradients and Hessians of every CalcJob this search ran, per stage (link label)."""
        cost = {"gradients": 0, "hessians": 0, "by_stage": {}}
        for node in self.node.called_descendants:
            if not isinstance(node, orm.CalcJobNode) or "output_parameters" not in node.outputs:
                continue
            params = node.outputs.output_parameters.get_dict()
            level = params.get("level") or {}
            reference = level.get("calculator") not in (None, Calculator.HIP)
            gradients = (params.get("n_gradient_evaluations") or 0) if reference else 0
            hessians = params.get("n_reference_hessian_evaluations") or 0
            stage = (node.label or "").rpartition(":")[2] or node.process_label
            entry = cost["by_stage"].setdefault(stage, {"gradients": 0, "hessians": 0})
            entry["gradients"] += gradients
            entry["hessians"] += hessians
            cost["gradients"] += gradients
            cost["hessians"] += hessians
        return cost

    def results(self):
        if self.ctx.attempt is not None:
            self._close_attempt()
        ran = [a for a in self.ctx.attempts if not a.get("skipped")]
        if self.ctx.status != Outcome.SUCCESS and ran and ran[-1]["status"] is None:
            ran[-1]["status"] = self.ctx.status
        kwargs = {
            "refine": orm.Str(self.ctx.refine or "none"),
            "status": orm.Str(self.ctx.status),
            "message": orm.Str(self.ctx.message or ""),
            "route": orm.Str(self.ctx.route or ""),
            "attempts": orm.List(self.ctx.attempts),
        }
        for role, parameters in self.ctx.endpoint_parameters.items():
            kwargs[f"{role}_parameters"] = parameters
        nodes = self.ctx.stage_nodes
        if "tsopt" in nodes:
            kwargs["tsopt_parameters"] = nodes["tsopt"].outputs.output_parameters
            kwargs["ts_structure"] = nodes["tsopt"].outputs.ts
        if "tsopt_hip" in nodes:
            kwargs["ts_hip"] = nodes["tsopt_hip"].outputs.ts
            self.out("ts_hip", nodes["tsopt_hip"].outputs.ts)
        kwargs["reference_cost"] = orm.Dict(self._reference_cost())
        if "irc" in nodes:
            kwargs["irc_parameters"] = nodes["irc"].outputs.output_parameters
        if "dft" in nodes:
            kwargs["dft_parameters"] = nodes["dft"].outputs.output_parameters
            if "hessian" in nodes["dft"].outputs:
                self.out("dft_hessian", nodes["dft"].outputs.hessian)
        thermo = self._thermochemistry()
        if thermo is not None:
            kwargs["thermochemistry"] = thermo
            self.out("thermochemistry", thermo)
        summary = summarize_ts_search(**kwargs, metadata={"call_link_label": "summarize"})
        self.out("output_parameters", summary)
        self.out("reactant", self.ctx.reactant)
        self.out("product", self.ctx.product)
        if "path" in nodes and "path" in nodes["path"].outputs:
            self.out("path", nodes["path"].outputs.path)
        if "tsopt" in nodes:
            self.out("ts", nodes["tsopt"].outputs.ts)
            if "hessian" in nodes["tsopt"].outputs:
                self.out("ts_hessian", nodes["tsopt"].outputs.hessian)
        if "irc" in nodes:
            for port in ("irc", "forward_end", "backward_end"):
                if port in nodes["irc"].outputs:
                    self.out(port, nodes["irc"].outputs[port])
        self.report(f"{self.ctx.status}: {self.ctx.message}")
        spec = OUTCOME_EXIT_CODES.get(Outcome(self.ctx.status))
        if spec is not None:
            return getattr(self.exit_codes, spec.label).format(message=self.ctx.message or "")
        return None
