"""The common CalcJob of every HIP stage: nodes in -> worker input JSON -> ``aiida-hip-worker`` run.

A subclass names its stage, its structure inputs (port -> role in the worker input) and its outputs;
the rest (level, settings, model, exit codes, scheduler options) is shared. Exit codes follow
aiida-quantumespresso's ranges: 300s output missing or unusable, 400s not converged, 500s a physics
check failed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from aiida import orm
from aiida.common import datastructures
from aiida.common.constants import elements
from aiida.engine import CalcJob

from ..common import exit_codes
from ..common.level import PARAMETER_KEYS, PARAMETERS_HELP, Level, LevelError
from ..data import HipModelData
from ..worker.io import ARRAYS_FILE, RESULTS_FILE, input_text

INPUT_FILE = "aiida.json"
OUTPUT_FILE = "aiida.out"
_NUMBERS = {data["symbol"]: z for z, data in elements.items()}


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
    data = value.get_dict()
    unknown = sorted(set(data) - set(PARAMETER_KEYS))
    if unknown:
        return f"unknown parameters {unknown}; valid: {list(PARAMETER_KEYS)}"
    try:
        Level.from_dict(data)
    except (LevelError, TypeError) as exc:
        return f"invalid parameters: {exc}"
    return None


def level_of(parameters: orm.Dict | None) -> Level | None:
    """The level a ``parameters`` node asks for (the default level without one); ``None`` if invalid
    (the ``parameters`` port reports that itself)."""
    try:
        return Level.from_dict(parameters.get_dict() if parameters is not None else {})
    except (LevelError, TypeError):
        return None


def molecule_arrays(structure: orm.StructureData) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions (A) of a molecule node, without ASE."""
    numbers = [_NUMBERS[structure.get_kind(site.kind_name).symbol] for site in structure.sites]
    return np.array(numbers, dtype=int), np.array([site.position for site in structure.sites], dtype=float)


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


def worker_calcinfo(inputs, local_copy_list: list, retrieve: list[str]) -> datastructures.CalcInfo:
    """One ``aiida-hip-worker INPUT`` call: its stdout, the staged files and what comes back (plus stdout)."""
    codeinfo = datastructures.CodeInfo()
    codeinfo.code_uuid = inputs.code.uuid
    codeinfo.cmdline_params = [inputs.metadata.options.input_filename]
    codeinfo.stdout_name = inputs.metadata.options.output_filename
    calcinfo = datastructures.CalcInfo()
    calcinfo.codes_info = [codeinfo]
    calcinfo.local_copy_list = local_copy_list
    calcinfo.retrieve_list = [inputs.metadata.options.output_filename, *retrieve]
    return calcinfo


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

        exit_codes.declare(
            spec, (exit_codes.OUTPUT_MISSING, exit_codes.OUTPUT_CORRUPT, *exit_codes.OUTCOME_EXIT_CODES.values())
        )

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        level = level_of(value.get("parameters"))
        if level is None:
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

        return worker_calcinfo(self.inputs, local_copy_list, [RESULTS_FILE, ARRAYS_FILE])
