"""``hip.base``: the TS optimisation CalcJob wrapped in a ``BaseRestartWorkChain`` with error handlers.

Handlers (in the aiida-quantumespresso style): a run that ran out of steps restarts from its last
geometry with more steps; a converged saddle with more than one imaginary mode is displaced along
the extra mode and re-optimised, following the dominant imaginary mode; a worker that rejected its
input, or a TS optimisation that fell to a minimum, ends the work chain with a clear exit code.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from ..calcjobs import HipTSOptCalculation
from .functions import displace_along_mode, mode_as_tangent

#: largest atomic displacement (A) along an unwanted imaginary mode before re-optimising
DISPLACEMENT = 0.15


class HipTSOptBaseWorkChain(BaseRestartWorkChain):
    """TS optimisation (RS-P-RFO or Sella) + frequencies, restarted until exactly one imaginary mode."""

    _process_class = HipTSOptCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(HipTSOptCalculation, namespace="tsopt")
        spec.expose_outputs(HipTSOptCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.exit_code(
            310, "ERROR_WORKER_INPUT_REJECTED", message="The worker rejected the input; restarting cannot help."
        )
        spec.exit_code(
            501,
            "ERROR_CONVERGED_TO_MINIMUM",
            message="The TS optimisation converged to a geometry without an imaginary mode (a minimum).",
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(HipTSOptCalculation, "tsopt"))
        self.ctx.displacements = 0

    # --- handlers (higher priority runs first) -----------------------------------------------------------
    @process_handler(
        priority=600,
        exit_codes=[
            HipTSOptCalculation.exit_codes.ERROR_INVALID_WORKER_INPUT,
            HipTSOptCalculation.exit_codes.ERROR_WORKER_CRASHED,
            HipTSOptCalculation.exit_codes.ERROR_OUTPUT_MISSING,
            HipTSOptCalculation.exit_codes.ERROR_OUTPUT_CORRUPT,
        ],
    )
    def handle_worker_failure(self, node):
        """Nothing to restart from: say what the worker said and stop."""
        self.report(f"{node.process_label}<{node.pk}> failed: {node.exit_message}")
        return ProcessHandlerReport(True, self.exit_codes.ERROR_WORKER_INPUT_REJECTED)

    @process_handler(priority=500, exit_codes=[HipTSOptCalculation.exit_codes.ERROR_NOT_CONVERGED])
    def handle_not_converged(self, node):
        """Restart from the last geometry with 50% more steps."""
        settings = self.ctx.inputs.settings.get_dict() if "settings" in self.ctx.inputs else {}
        key = "sella" if settings.get("route") == "sella" else "tsopt"
        field = "max_steps" if key == "sella" else "max_cycles"
        block = dict(settings.get(key) or {})
        block[field] = int(1.5 * block.get(field, 200 if key == "sella" else 100))
        settings[key] = block
        self.ctx.inputs.settings = orm.Dict(settings)
        if "ts" in node.outputs:
            self.ctx.inputs.ts_guess = node.outputs.ts
        self.report(
            f"{node.process_label}<{node.pk}> not converged: restarting from its last geometry, {field}={block[field]}"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[HipTSOptCalculation.exit_codes.ERROR_WRONG_IMAGINARY_COUNT])
    def handle_wrong_imaginary_count(self, node):
        """Several imaginary modes: displace along the second one (sign alternating) and follow the first."""
        hessian = node.outputs.hessian
        frequencies = hessian.get_array("frequencies")
        threshold = node.outputs.output_parameters.get("freq", {}).get("imaginary_threshold_cm1", 20.0)
        n_imaginary = int(np.sum(frequencies < -threshold))
        if n_imaginary == 0:
            self.report(f"{node.process_label}<{node.pk}> converged to a minimum (no imaginary mode)")
            return ProcessHandlerReport(True, self.exit_codes.ERROR_CONVERGED_TO_MINIMUM)
        self.ctx.displacements += 1
        amplitude = DISPLACEMENT if self.ctx.displacements % 2 else -DISPLACEMENT
        self.ctx.inputs.ts_guess = displace_along_mode(
            node.outputs.ts, node.outputs.hessian, orm.Int(1), orm.Float(amplitude)
        )
        self.ctx.inputs.tangent = mode_as_tangent(node.outputs.hessian, orm.Int(0))
        self.report(
            f"{node.process_label}<{node.pk}> has {n_imaginary} imaginary modes ({frequencies[:n_imaginary].round(0)} "
            f"cm^-1): displacing {DISPLACEMENT} A along the second and re-optimising along the first"
        )
        return ProcessHandlerReport(True)
