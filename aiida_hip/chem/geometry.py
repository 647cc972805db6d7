"""Geometry helpers shared by the dataset generator and the TS pipeline: bonds, alignment, RMSD."""

from __future__ import annotations

import numpy as np

#: Covalent-radius scale that defines a bond when reading connectivity off a geometry.
BOND_SCALE = 1.3


def connectivity(numbers, positions, scale: float = BOND_SCALE) -> set[tuple[int, int]]:
    """Bonded pairs (i < j): distance below ``scale`` times the sum of covalent radii (ASE's table)."""
    from ase.data import covalent_radii

    positions = np.asarray(positions, dtype=np.float64)
    radii = covalent_radii[np.asarray(numbers)]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    i, j = np.nonzero(np.triu(d < scale * (radii[:, None] + radii[None]), 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def kabsch_align(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotate and translate ``mobile`` onto ``target`` (same atom order), minimising weighted RMSD."""
    mobile, target = np.asarray(mobile, dtype=np.float64), np.asarray(target, dtype=np.float64)
    weights = np.ones(len(mobile)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = weights / weights.sum()
    mc, tc = (w[:, None] * mobile).sum(0), (w[:, None] * target).sum(0)
    a, b = mobile - mc, target - tc
    u, _, vt = np.linalg.svd((w[:, None] * a).T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return a @ rot + tc


def aligned_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD (A) between two geometries with the same atom order after optimal superposition."""
    b = np.asarray(b, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((kabsch_align(a, b) - b) ** 2, axis=1))))


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


def min_distance(positions: np.ndarray) -> float:
    """Shortest interatomic distance (A); infinity for a single atom."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return float("inf")
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return float(d[np.triu_indices(len(positions), 1)].min())
