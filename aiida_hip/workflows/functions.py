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
