"""Restartable optimisations: a stage CalcJob inside a ``BaseRestartWorkChain`` with error handlers.

``hip.base`` wraps the TS optimisation, ``hip.geometry`` the minimisation (both end with frequencies).
Handlers, in the aiida-quantumespresso style: a run that ran out of steps restarts from its last
geometry with 50% more steps; a wrong number of imaginary modes is fixed by displacing along the
offending mode (a TS with extra modes: the second one, following the first; a "minimum" with an
imaginary mode: that mode) and re-optimising; a worker that rejected its input stops at once.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from ..calcjobs import HipOptCalculation, HipStageCalculation, HipTSOptCalculation
from ..common import exit_codes
from ..common.types import AUTO_ORDER, Outcome, Route
from .functions import displace_along_mode, mode_as_tangent, molecule_thermochemistry
from .resume import SubmitOnceMixin

_CODES = HipStageCalculation.exit_codes


class HipBaseWorkChain(SubmitOnceMixin, BaseRestartWorkChain):
    """Shared outline and handlers; subclasses name the CalcJob, its namespace and its geometry ports."""

    _process_class: type[HipStageCalculation]
    _namespace: str
    _geometry_in: str
    _geometry_out: str
    #: the tunables of the handlers
    defaults = AttributeDict(
        {
            #: largest atomic displacement (A) along an unwanted imaginary mode before re-optimising
            "displacement": 0.15,
            #: factor on the step limit when a run restarts after running out of steps
            "step_factor": 1.5,
            #: route (None: routeless stages) -> settings block, step-limit key, the stage's default limit
            "step_limits": {},
        }
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(cls._process_class, namespace=cls._namespace)
        spec.expose_outputs(cls._process_class)
        spec.outline(cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results)
        exit_codes.declare(spec, exit_codes.WORKER_FAILURES)

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(self._process_class, self._namespace))
        self.ctx.displacements = 0

    def _displaced(self, node, mode_index: int) -> orm.StructureData:
        """The last geometry moved along a normal mode, the sign alternating between attempts."""
        self.ctx.displacements += 1
        step = self.defaults.displacement
        amplitude = step if self.ctx.displacements % 2 else -step
        geometry = node.outputs[self._geometry_out]
        return displace_along_mode(geometry, node.outputs.hessian, orm.Int(mode_index), orm.Float(amplitude))

    @staticmethod
    def _imaginary(node) -> tuple[np.ndarray, int]:
        frequencies = node.outputs.hessian.get_array("frequencies")
        threshold = node.outputs.output_parameters.get("freq", {}).get("imaginary_threshold_cm1", 20.0)
        return frequencies, int(np.sum(frequencies < -threshold))

    # --- handlers (higher priority runs first) -----------------------------------------------------------
    @process_handler(
        priority=600,
        exit_codes=[
            _CODES.ERROR_INVALID_INPUT,
            _CODES.ERROR_WORKER_CRASHED,
            _CODES.ERROR_OUTPUT_MISSING,
            _CODES.ERROR_OUTPUT_CORRUPT,
        ],
    )
    def handle_worker_failure(self, node):
        """Strategy: none. The input was refused or the worker left no usable output: nothing to restart
        from, so stop with the child's own exit code."""
        self.report_error_handled(node, "stopping: restarting cannot help")
        label = next(code.label for code in exit_codes.WORKER_FAILURES if code.status == node.exit_status)
        return ProcessHandlerReport(True, getattr(self.exit_codes, label).format(message=node.exit_message or ""))

    @process_handler(priority=500, exit_codes=[_CODES.ERROR_NOT_CONVERGED])
    def handle_not_converged(self, node):
        """Strategy: the run ran out of steps, so restart it from its last geometry with the step limit
        raised by ``defaults.step_factor``."""
        settings = self.ctx.inputs.settings.get_dict() if "settings" in self.ctx.inputs else {}
        limits = self.defaults.step_limits
        key, field, default = limits[settings.get("route", AUTO_ORDER[0])] if None not in limits else limits[None]
        block = dict(settings.get(key) or {})
        block[field] = int(self.defaults.step_factor * block.get(field, default))
        settings[key] = block
        self.ctx.inputs.settings = orm.Dict(settings)
        if self._geometry_out in node.outputs:
            self.ctx.inputs[self._geometry_in] = node.outputs[self._geometry_out]
        self.report_error_handled(node, f"restarting from its last geometry with {field}={block[field]}")
        return ProcessHandlerReport(True)

    def report_error_handled(self, node, action: str) -> None:
        """Report what failed and what the handler does about it (as aiida-quantumespresso's work chains)."""
        self.report(f"{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: {node.exit_message}")
        self.report(f"Action taken: {action}")


class HipTSOptBaseWorkChain(HipBaseWorkChain):
    """``hip.base``: TS optimisation (RS-P-RFO or Sella) + frequencies until exactly one imaginary mode."""

    _process_class = HipTSOptCalculation
    _namespace = "tsopt"
    _geometry_in = "ts_guess"
    _geometry_out = "ts"

    defaults = AttributeDict(
        {
            **HipBaseWorkChain.defaults,
            #: per route: settings block, step-limit key, the stage's default limit (the pipeline's
            #: SellaSettings / TSOptSettings defaults; the work chain does not import the pipeline)
            "step_limits": {
                Route.SELLA.value: ("sella", "max_steps", 200),
                Route.PYSISYPHUS.value: ("tsopt", "max_cycles", 100),
            },
        }
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        exit_codes.declare(
            spec, (exit_codes.CONVERGED_TO_MINIMUM, exit_codes.OUTCOME_EXIT_CODES[Outcome.NOT_CONVERGED])
        )

    @process_handler(priority=400, exit_codes=[_CODES.ERROR_WRONG_IMAGINARY_COUNT])
    def handle_wrong_imaginary_count(self, node):
        """Strategy: with several imaginary modes, displace along the second and re-optimise following the
        first; with none, the optimiser found a minimum: stop (a new guess is the caller's business)."""
        frequencies, n_imaginary = self._imaginary(node)
        if n_imaginary == 0:
            self.report_error_handled(node, "stopping: the optimisation converged to a minimum")
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_CONVERGED_TO_MINIMUM.format(message=node.exit_message or "")
            )
        self.ctx.inputs.ts_guess = self._displaced(node, 1)
        self.ctx.inputs.tangent = mode_as_tangent(node.outputs.hessian, orm.Int(0))
        self.report_error_handled(
            node,
            f"{n_imaginary} imaginary modes ({frequencies[:n_imaginary].round(0)} cm^-1): displacing "
            f"{self.defaults.displacement} A along the second and re-optimising along the first",
        )
        return ProcessHandlerReport(True)


class HipGeometryWorkChain(HipBaseWorkChain):
    """``hip.geometry``: minimisation + frequencies until a true minimum, then its RRHO thermochemistry."""

    _process_class = HipOptCalculation
    _namespace = "opt"
    _geometry_in = "structure"
    _geometry_out = "structure"
    defaults = AttributeDict(
        {**HipBaseWorkChain.defaults, "step_limits": {None: ("opt", "max_cycles", 150)}}  # OptSettings.max_cycles
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "temperature",
            valid_type=orm.Float,
            default=lambda: orm.Float(298.15),
            validator=lambda value, _: None if value is None or value.value > 0 else "temperature must be positive",
            help="Temperature (K) of the thermochemistry of the minimum found.",
        )
        spec.output(
            "thermochemistry",
            valid_type=orm.Dict,
            required=False,
            help="ZPE, enthalpy, entropy (quasi-RRHO), Gibbs energy of the minimum at `temperature`, 1 atm.",
        )

    def results(self):
        exit_code = super().results()
        node = self.ctx.children[-1] if self.ctx.children else None
        usable = exit_code is None and node is not None and node.is_finished_ok and "hessian" in node.outputs
        if usable and node.outputs.output_parameters.get("energy_ev") is not None:
            thermo = molecule_thermochemistry(
                node.outputs.structure,
                node.outputs.hessian,
                node.outputs.output_parameters,
                self.inputs.temperature,
                metadata={"call_link_label": "thermochemistry"},
            )
            self.out("thermochemistry", thermo)
        return exit_code

    @process_handler(priority=400, exit_codes=[_CODES.ERROR_WRONG_IMAGINARY_COUNT])
    def handle_imaginary_mode(self, node):
        """Strategy: a saddle, not a minimum: push the geometry down the imaginary mode and minimise again."""
        frequencies, _ = self._imaginary(node)
        self.ctx.inputs.structure = self._displaced(node, 0)
        self.report_error_handled(
            node,
            f"imaginary mode at {frequencies[0]:.0f} cm^-1: displacing {self.defaults.displacement} A along it "
            "and minimising again",
        )
        return ProcessHandlerReport(True)
