"""calcfunctions the work chains use, so that every derived node has its provenance."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction


@calcfunction
def displace_along_mode(
    structure: orm.StructureData, hessian: orm.ArrayData, mode_index: orm.Int, amplitude: orm.Float
) -> orm.StructureData:
    """``structure`` moved along normal mode ``mode_index`` so its largest atomic step is ``amplitude`` (A)."""
    mode = hessian.get_array("modes")[mode_index.value]
    positions = np.array([site.position for site in structure.sites])
    if mode.shape != positions.shape:
        raise ValueError(f"mode of shape {mode.shape} does not fit a structure of {len(positions)} atoms")
    moved = structure.clone()
    moved.reset_sites_positions([tuple(p) for p in positions + amplitude.value * mode / np.abs(mode).max()])
    return moved


@calcfunction
def mode_as_tangent(hessian: orm.ArrayData, mode_index: orm.Int) -> orm.ArrayData:
    """Normal mode ``mode_index`` as the unit tangent RS-P-RFO follows."""
    mode = hessian.get_array("modes")[mode_index.value]
    tangent = orm.ArrayData()
    tangent.set_array("tangent", mode / np.linalg.norm(mode))
    return tangent


#: how the thermochemistry outputs describe their low-frequency treatment
LOW_FREQUENCY = "qrrho (Grimme 2012, 100 cm^-1)"


def _rrho(structure: orm.StructureData, hessian: orm.ArrayData, parameters: orm.Dict, temperature: float) -> dict:
    """The chemistry layer's RRHO on a stage's outputs (geometry, frequencies, ``energy_ev``)."""
    from ..chem.thermo import rrho

    atoms = structure.get_ase()
    frequencies = hessian.get_array("frequencies")
    return rrho(atoms.numbers, atoms.positions, frequencies, parameters["energy_ev"], temperature).to_dict()


@calcfunction
def molecule_thermochemistry(
    structure: orm.StructureData, hessian: orm.ArrayData, parameters: orm.Dict, temperature: orm.Float
) -> orm.Dict:
    """Ideal-gas RRHO thermochemistry (quasi-RRHO entropies) of a minimum (eV, eV/K; symmetry number 1)."""
    return orm.Dict(_rrho(structure, hessian, parameters, temperature.value) | {"low_frequency": LOW_FREQUENCY})


@calcfunction
def reaction_thermochemistry(temperature: orm.Float, **nodes) -> orm.Dict:
    """RRHO thermochemistry (quasi-RRHO entropies) of reactant, TS and product from their stage outputs,
    Gibbs and enthalpy barriers and Eyring rate constants both ways (unimolecular, symmetry number 1)."""
    from ..chem.thermo import eyring_rate

    t = temperature.value
    species = {}
    for role in ("reactant", "ts", "product"):
        result = _rrho(nodes[f"{role}_structure"], nodes[f"{role}_hessian"], nodes[f"{role}_parameters"], t)
        species[role] = {k: v for k, v in result.items() if k not in ("temperature", "pressure", "low_frequency")}
    out = {"temperature_k": t, "pressure_pa": 101325.0, "low_frequency": LOW_FREQUENCY, "species": species}
    for direction, start in (("forward", "reactant"), ("reverse", "product")):
        dg = species["ts"]["gibbs_energy"] - species[start]["gibbs_energy"]
        out[f"gibbs_barrier_{direction}_ev"] = dg
        out[f"enthalpy_barrier_{direction}_ev"] = species["ts"]["enthalpy"] - species[start]["enthalpy"]
        out[f"rate_{direction}_per_s"] = eyring_rate(dg, t)
    return orm.Dict(out)
