"""The common CalcJob of every HIP stage: nodes in -> worker input JSON -> ``aiida-hip-worker`` run.

A subclass names its stage, its structure inputs (port -> role in the worker input) and its outputs;
the rest (level, settings, model, exit codes, scheduler options) is shared. Exit codes follow
aiida-quantumespresso's ranges: 300s output missing or unusable, 400s not converged, 500s a physics
check failed.
"""

from __future__ import annotations

from typing import ClassVar

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from ..data import HipModelData
from ..worker.io import input_text

INPUT_FILE = "aiida.json"
OUTPUT_FILE = "aiida.out"
LEVEL_KEYS = ("calculator", "hessian", "charge", "multiplicity", "device")
PARAMETERS_HELP = (
    "Level of theory: calculator (hip|xtb), hessian (predicted|autograd|finite-difference|reference|none), "
    "charge, multiplicity, device (cpu|cuda). Default: HIP energies, forces and predicted Hessians."
)


def validate_molecule(value: orm.StructureData, _) -> str | None:
    """Molecules only: no periodic direction, no kinds with vacancies or alloys."""
    if value is None:
        return None
    if any(value.pbc):
        return f"periodic structures are not supported (pbc={tuple(value.pbc)}): give a molecule with pbc all False"
    if any(kind.is_alloy or kind.has_vacancies for kind in value.kinds):
        return "structures with alloy or vacancy kinds are not supported"
    if len(value.sites) < 2:
        return f"a molecule needs at least two atoms, got {len(value.sites)}"
    return None


def validate_parameters(value: orm.Dict, _) -> str | None:
    """The level of theory: which calculator makes energies/forces and which one the Hessians."""
    if value is None:
        return None
    from ..pipeline.calculators import Level, LevelError

    data = value.get_dict()
    unknown = sorted(set(data) - set(LEVEL_KEYS))
    if unknown:
        return f"unknown parameters {unknown}; valid: {list(LEVEL_KEYS)}"
    try:
        Level(**data)
    except (LevelError, TypeError) as exc:
        return f"invalid parameters: {exc}"
    return None


def structure_to_dict(structure: orm.StructureData) -> dict:
    return {
        "symbols": [structure.get_kind(site.kind_name).symbol for site in structure.sites],
        "positions": [list(site.position) for site in structure.sites],
    }


def structure_from_dict(data: dict) -> orm.StructureData:
    structure = orm.StructureData(pbc=(False, False, False))
    for symbol, position in zip(data["symbols"], data["positions"], strict=True):
        structure.append_atom(position=tuple(position), symbols=symbol)
    return structure


class HipStageCalculation(CalcJob):
    """Runs one pipeline stage of aiida-hip on one reaction (or molecule) with ``aiida-hip-worker``."""

    _stage: str = ""
    #: input port -> role of that structure in the worker input
    _structure_ports: ClassVar[dict[str, str]] = {}
    _required_structures: tuple[str, ...] = ()

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help=PARAMETERS_HELP,
        )
        spec.input(
            "settings",
            valid_type=orm.Dict,
            required=False,
            help="Stage settings, passed to the pipeline stage (see aiida_hip.worker.stages).",
        )
        spec.input(
            "model",
            valid_type=HipModelData,
            required=False,
            help="The HIP checkpoint; without it the worker loads the checkpoint shipped with its installation.",
        )
        for port in cls._structure_ports:
            spec.input(
                port,
                valid_type=orm.StructureData,
                required=port in cls._required_structures,
                validator=validate_molecule,
            )
        spec.input("metadata.options.input_filename", valid_type=str, default=INPUT_FILE)
        spec.input("metadata.options.output_filename", valid_type=str, default=OUTPUT_FILE)
        spec.input("metadata.options.parser_name", valid_type=str, default="hip.stage")
        spec.input("metadata.options.threads", valid_type=int, default=1, help="Torch/BLAS threads of the worker.")
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.inputs.validator = cls.validate_inputs

        spec.output("output_parameters", valid_type=orm.Dict, help="Energies, counts, timings and the stage summary.")
        spec.default_output_node = "output_parameters"

        spec.exit_code(301, "ERROR_OUTPUT_MISSING", message="The worker wrote no results.json.")
        spec.exit_code(302, "ERROR_OUTPUT_CORRUPT", message="The worker's output could not be read: {error}")
        spec.exit_code(303, "ERROR_INVALID_WORKER_INPUT", message="The worker rejected its input: {error}")
        spec.exit_code(304, "ERROR_WORKER_CRASHED", message="The worker failed: {error}")
        spec.exit_code(400, "ERROR_PATH_FAILED", message="No reaction path / TS guess: {error}")
        spec.exit_code(401, "ERROR_NOT_CONVERGED", message="The optimisation did not converge: {error}")
        spec.exit_code(402, "ERROR_IRC_INCOMPLETE", message="The IRC could not be followed: {error}")
        spec.exit_code(403, "ERROR_FRAGMENTED", message="The optimisation ran away into fragments: {error}")
        spec.exit_code(500, "ERROR_WRONG_IMAGINARY_COUNT", message="Wrong number of imaginary modes: {error}")
        spec.exit_code(501, "ERROR_IRC_UNINTENDED", message="The IRC connects other minima: {error}")
        spec.exit_code(502, "ERROR_IRC_SAME_ENDS", message="Both IRC ends are the same minimum: {error}")
        spec.exit_code(503, "ERROR_NOT_STATIONARY", message="Not a stationary point at this level: {error}")

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        from ..pipeline.calculators import Level, LevelError

        parameters = value.get("parameters")
        try:
            level = Level(**(parameters.get_dict() if parameters is not None else {}))
        except (LevelError, TypeError):
            return None  # the parameters port reports a bad level itself
        if value.get("model") is not None and not level.uses_model:
            return "a model was given but the level (xTB energies and Hessians) never uses it"
        return None

    # --- what subclasses add to the worker input ---------------------------------------------------------
    def reaction_entry(self) -> dict:
        structures = {
            role: structure_to_dict(self.inputs[port])
            for port, role in self._structure_ports.items()
            if port in self.inputs
        }
        return {"name": self.node.label or f"{self._stage}-{self.node.pk}", "structures": structures}

    def reaction_entries(self) -> list[dict]:
        """Every reaction of this job (one here; a packed job carries many)."""
        return [self.reaction_entry()]

    def prepare_for_submission(self, folder):
        level = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        settings = self.inputs.settings.get_dict() if "settings" in self.inputs else {}
        checkpoint = None
        local_copy_list = []
        if "model" in self.inputs:
            model = self.inputs.model
            local_copy_list.append((model.uuid, model.filename, HipModelData.DEFAULT_FILENAME))
            checkpoint = {"file": HipModelData.DEFAULT_FILENAME, "sha256": model.sha256}
        text = input_text(
            self._stage,
            self.reaction_entries(),
            level=level,
            settings=settings,
            checkpoint=checkpoint,
            threads=self.inputs.metadata.options.threads,
            processes=self.inputs.metadata.options.get("processes", 1),
        )
        with folder.open(self.inputs.metadata.options.input_filename, "w") as handle:
            handle.write(text)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [self.inputs.metadata.options.input_filename]
        codeinfo.stdout_name = self.inputs.metadata.options.output_filename

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = [self.inputs.metadata.options.output_filename, "results.json", "arrays.npz"]
        return calcinfo
