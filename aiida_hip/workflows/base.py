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
from .functions import displace_along_mode, mode_as_tangent, molecule_thermochemistry
from .resume import SubmitOnceMixin

#: largest atomic displacement (A) along an unwanted imaginary mode before re-optimising
DISPLACEMENT = 0.15
_CODES = HipStageCalculation.exit_codes


class HipBaseWorkChain(SubmitOnceMixin, BaseRestartWorkChain):
    """Shared outline and handlers; subclasses name the CalcJob, its namespace and its geometry ports."""

    _process_class: type[HipStageCalculation]
    _namespace: str
    _geometry_in: str
    _geometry_out: str

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(cls._process_class, namespace=cls._namespace)
        spec.expose_outputs(cls._process_class)
        spec.outline(cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results)
        spec.exit_code(
            310, "ERROR_WORKER_INPUT_REJECTED", message="The worker rejected the input; restarting cannot help."
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(self._process_class, self._namespace))
        self.ctx.displacements = 0

    def _displaced(self, node, mode_index: int) -> orm.StructureData:
        """The last geometry moved along a normal mode, the sign alternating between attempts."""
        self.ctx.displacements += 1
        amplitude = DISPLACEMENT if self.ctx.displacements % 2 else -DISPLACEMENT
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
            _CODES.ERROR_INVALID_WORKER_INPUT,
            _CODES.ERROR_WORKER_CRASHED,
            _CODES.ERROR_OUTPUT_MISSING,
            _CODES.ERROR_OUTPUT_CORRUPT,
        ],
    )
    def handle_worker_failure(self, node):
        """Nothing to restart from: say what the worker said and stop."""
        self.report(f"{node.process_label}<{node.pk}> failed: {node.exit_message}")
        return ProcessHandlerReport(True, self.exit_codes.ERROR_WORKER_INPUT_REJECTED)

    @process_handler(priority=500, exit_codes=[_CODES.ERROR_NOT_CONVERGED])
    def handle_not_converged(self, node):
        """Restart from the last geometry with 50% more steps."""
        settings = self.ctx.inputs.settings.get_dict() if "settings" in self.ctx.inputs else {}
        key, field, default = self._step_limit(settings)
        block = dict(settings.get(key) or {})
        block[field] = int(1.5 * block.get(field, default))
        settings[key] = block
        self.ctx.inputs.settings = orm.Dict(settings)
        if self._geometry_out in node.outputs:
            self.ctx.inputs[self._geometry_in] = node.outputs[self._geometry_out]
        self.report(
            f"{node.process_label}<{node.pk}> not converged: restarting from its last geometry, {field}={block[field]}"
        )
        return ProcessHandlerReport(True)

    def _step_limit(self, settings: dict) -> tuple[str, str, int]:
        raise NotImplementedError


class HipTSOptBaseWorkChain(HipBaseWorkChain):
    """``hip.base``: TS optimisation (RS-P-RFO or Sella) + frequencies until exactly one imaginary mode."""

    _process_class = HipTSOptCalculation
    _namespace = "tsopt"
    _geometry_in = "ts_guess"
    _geometry_out = "ts"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.exit_code(
            501,
            "ERROR_CONVERGED_TO_MINIMUM",
            message="The TS optimisation converged to a geometry without an imaginary mode (a minimum).",
        )

    def _step_limit(self, settings: dict) -> tuple[str, str, int]:
        return ("sella", "max_steps", 200) if settings.get("route") == "sella" else ("tsopt", "max_cycles", 100)

    @process_handler(priority=400, exit_codes=[_CODES.ERROR_WRONG_IMAGINARY_COUNT])
    def handle_wrong_imaginary_count(self, node):
        """Several imaginary modes: displace along the second one and follow the first."""
        frequencies, n_imaginary = self._imaginary(node)
        if n_imaginary == 0:
            self.report(f"{node.process_label}<{node.pk}> converged to a minimum (no imaginary mode)")
            return ProcessHandlerReport(True, self.exit_codes.ERROR_CONVERGED_TO_MINIMUM)
        self.ctx.inputs.ts_guess = self._displaced(node, 1)
        self.ctx.inputs.tangent = mode_as_tangent(node.outputs.hessian, orm.Int(0))
        self.report(
            f"{node.process_label}<{node.pk}> has {n_imaginary} imaginary modes ({frequencies[:n_imaginary].round(0)} "
            f"cm^-1): displacing {DISPLACEMENT} A along the second and re-optimising along the first"
        )
        return ProcessHandlerReport(True)


class HipGeometryWorkChain(HipBaseWorkChain):
    """``hip.geometry``: minimisation + frequencies until a true minimum, then its RRHO thermochemistry."""

    _process_class = HipOptCalculation
    _namespace = "opt"
    _geometry_in = "structure"
    _geometry_out = "structure"

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

    def _step_limit(self, settings: dict) -> tuple[str, str, int]:
        return "opt", "max_cycles", 150

    @process_handler(priority=400, exit_codes=[_CODES.ERROR_WRONG_IMAGINARY_COUNT])
    def handle_imaginary_mode(self, node):
        """A saddle, not a minimum: push the geometry down the imaginary mode and minimise again."""
        frequencies, _ = self._imaginary(node)
        self.ctx.inputs.structure = self._displaced(node, 0)
        self.report(
            f"{node.process_label}<{node.pk}> has an imaginary mode ({frequencies[0]:.0f} cm^-1): displacing "
            f"{DISPLACEMENT} A along it and minimising again"
        )
        return ProcessHandlerReport(True)
