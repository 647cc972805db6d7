"""Geometry helpers shared by the dataset generator and the TS pipeline: bonds, alignment, RMSD."""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii

from ..common.geometry import aligned_rmsd, kabsch_align, min_distance

__all__ = ["BOND_SCALE", "aligned_rmsd", "connectivity", "isolated_atoms", "kabsch_align", "min_distance"]

#: Covalent-radius scale that defines a bond when reading connectivity off a geometry.
BOND_SCALE = 1.3


def connectivity(numbers, positions, scale: float = BOND_SCALE) -> set[tuple[int, int]]:
    """Bonded pairs (i < j): distance below ``scale`` times the sum of covalent radii (ASE's table)."""
    positions = np.asarray(positions, dtype=np.float64)
    radii = covalent_radii[np.asarray(numbers)]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    i, j = np.nonzero(np.triu(d < scale * (radii[:, None] + radii[None]), 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


#: Farther than this (A) from every other atom, an atom has left the molecule (beyond any TS bond or
#: van der Waals contact): an optimiser that "converges" there has run away on a flat surface.
ISOLATION_DISTANCE = 4.0


def isolated_atoms(positions: np.ndarray, distance: float = ISOLATION_DISTANCE) -> list[int]:
    """Indices of atoms whose nearest neighbour is farther than ``distance`` (A)."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return []
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return [int(i) for i in np.flatnonzero(d.min(axis=1) > distance)]
