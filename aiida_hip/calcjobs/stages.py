"""The HIP stage CalcJobs: ``hip.opt``, ``hip.path``, ``hip.tsopt``, ``hip.freq``, ``hip.irc``, ``hip.dft``."""

from __future__ import annotations

from typing import ClassVar

from aiida import orm
from aiida.common.constants import elements

from ..common.level import Level
from ..common.molecule import ReactionInputError, check_elements, check_reaction
from .base import HipStageCalculation, molecule_arrays


def _hessian_output(spec) -> None:
    spec.output(
        "hessian",
        valid_type=orm.ArrayData,
        required=False,
        help="Arrays 'hessian' (3N x 3N, eV/A^2), 'frequencies' (cm^-1, imaginary negative), 'modes' (normalised).",
    )


class HipPathCalculation(HipStageCalculation):
    """Growing string / geodesic CI-NEB (route pysisyphus) or geodesic guess (route sella): the TS guess."""

    _stage = "path"
    _structure_ports: ClassVar[dict[str, str]] = {"reactant": "reactant", "product": "product"}
    _required_structures = ("reactant", "product")

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs.validator = cls.validate_reaction
        spec.output("ts_guess", valid_type=orm.StructureData, required=False, help="Highest-energy point of the path.")
        spec.output(
            "tangent",
            valid_type=orm.ArrayData,
            required=False,
            help="Array 'tangent' (N x 3, unit) of the path at the guess; attribute 'curvature' (eV/A^2).",
        )
        spec.output("path", valid_type=orm.TrajectoryData, required=False, help="The path's images (energies in eV).")

    @classmethod
    def validate_reaction(cls, value, ctx) -> str | None:
        error = super().validate_inputs(value, ctx)
        if error:
            return error
        return validate_pair(value.get("reactant"), value.get("product"))


def validate_pair(reactant: orm.StructureData | None, product: orm.StructureData | None) -> str | None:
    """Reactant and product make one reaction (same atoms in the same order, sane, not identical):
    the pipeline's own check, run on the nodes before anything is launched."""
    if reactant is None or product is None:
        return None
    try:
        check_reaction(molecule_arrays(reactant), molecule_arrays(product), symbols=_symbol)
    except ReactionInputError as exc:
        return str(exc)
    return None


def validate_elements(model, structure: orm.StructureData | None, level: Level | None) -> str | None:
    """A level that uses the model gets only the elements the given checkpoint knows."""
    if model is None or structure is None or level is None or not level.uses_model:
        return None
    try:
        check_elements(molecule_arrays(structure)[0], model.elements, "reactant")
    except ReactionInputError as exc:
        return str(exc)
    return None


def _symbol(z: int) -> str:
    return elements[int(z)]["symbol"]


class HipTSOptCalculation(HipStageCalculation):
    """RS-P-RFO (or Sella) TS optimisation from a guess, then frequencies (exactly one imaginary mode)."""

    _stage = "tsopt"
    _structure_ports: ClassVar[dict[str, str]] = {"ts_guess": "ts_guess"}
    _required_structures = ("ts_guess",)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "tangent",
            valid_type=orm.ArrayData,
            required=False,
            help="Path tangent at the guess (array 'tangent', N x 3); RS-P-RFO follows the mode closest to it.",
        )
        spec.output("ts", valid_type=orm.StructureData, required=False, help="The last (converged) TS geometry.")
        _hessian_output(spec)

    def reaction_entry(self) -> dict:
        entry = super().reaction_entry()
        if "tangent" in self.inputs:
            tangent = self.inputs.tangent
            entry["arrays"] = {"tangent": tangent.get_array("tangent")}
            curvature = tangent.base.attributes.get("curvature", None)
            if curvature is not None:
                entry["parameters"] = {"curvature": curvature}
        return entry


class HipStructureCalculation(HipStageCalculation):
    """A stage on one fixed geometry that reports its Hessian, frequencies and modes."""

    _structure_ports: ClassVar[dict[str, str]] = {"structure": "structure"}
    _required_structures = ("structure",)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        _hessian_output(spec)


class HipOptCalculation(HipStructureCalculation):
    """RFO minimisation with HIP (or xTB) Hessians, then frequencies at the minimum."""

    _stage = "opt"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.output("structure", valid_type=orm.StructureData, required=False, help="The last (optimised) geometry.")


class HipFreqCalculation(HipStructureCalculation):
    """Eckart-projected frequencies of one geometry (setting ``expected``: ts or minimum)."""

    _stage = "freq"


class HipIRCCalculation(HipStageCalculation):
    """IRC both ways from a TS (from its Hessian), ends minimised and compared with reactant and product."""

    _stage = "irc"
    _structure_ports: ClassVar[dict[str, str]] = {"ts": "ts", "reactant": "reactant", "product": "product"}
    _required_structures = ("ts",)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "hessian",
            valid_type=orm.ArrayData,
            required=False,
            help="The TS Hessian (array 'hessian', eV/A^2) to start from instead of computing a new one.",
        )
        spec.output("forward_end", valid_type=orm.StructureData, required=False)
        spec.output("backward_end", valid_type=orm.StructureData, required=False)
        spec.output("irc", valid_type=orm.TrajectoryData, required=False, help="The IRC, backward end to forward end.")

    def reaction_entry(self) -> dict:
        entry = super().reaction_entry()
        if "hessian" in self.inputs:
            entry["arrays"] = {"hessian": self.inputs.hessian.get_array("hessian")}
        return entry


class HipDFTCalculation(HipStructureCalculation):
    """DFT (PySCF) verification of a TS or minimum: analytic Hessian, imaginary-mode count, RMS force.

    Settings: ``functional`` (default b3lyp), ``basis`` (6-31g*), ``expected`` (ts|minimum),
    ``force_rms_max`` (Hartree/Bohr, default 2e-3 as in the seed). Parameters give charge and
    multiplicity; the HIP model is not used.
    """

    _stage = "dft"
