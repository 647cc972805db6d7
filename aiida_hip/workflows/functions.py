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


def _species(structure: orm.StructureData, hessian: orm.ArrayData, parameters: orm.Dict) -> tuple:
    """(numbers, positions, frequencies, energy) of a stage's outputs, as the chemistry layer takes them."""
    atoms = structure.get_ase()
    return atoms.numbers, atoms.positions, hessian.get_array("frequencies"), parameters["energy_ev"]


@calcfunction
def molecule_thermochemistry(
    structure: orm.StructureData, hessian: orm.ArrayData, parameters: orm.Dict, temperature: orm.Float
) -> orm.Dict:
    """Ideal-gas RRHO thermochemistry (quasi-RRHO entropies) of a minimum (eV, eV/K; symmetry number 1)."""
    # here, not at the top: chem loads ASE, which the daemon's work chains must load without (test_vocabulary)
    from ..chem.thermo import LOW_FREQUENCY_NOTE, rrho

    result = rrho(*_species(structure, hessian, parameters), temperature.value).to_dict()
    return orm.Dict(result | {"low_frequency": LOW_FREQUENCY_NOTE})


@calcfunction
def reaction_thermochemistry(temperature: orm.Float, **nodes) -> orm.Dict:
    """RRHO thermochemistry (quasi-RRHO entropies) of reactant, TS and product from their stage outputs,
    Gibbs and enthalpy barriers and Eyring rate constants both ways (unimolecular, symmetry number 1)."""
    from ..chem.thermo import reaction_thermochemistry as thermochemistry  # ASE: as above

    species = {
        role: _species(nodes[f"{role}_structure"], nodes[f"{role}_hessian"], nodes[f"{role}_parameters"])
        for role in ("reactant", "ts", "product")
    }
    return orm.Dict(thermochemistry(species, temperature.value))
