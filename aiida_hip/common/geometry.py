"""Geometry helpers that need only NumPy: superposition, RMSD, shortest distance (Angstrom)."""

from __future__ import annotations

import numpy as np


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


def min_distance(positions: np.ndarray) -> float:
    """Shortest interatomic distance (A); infinity for a single atom."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return float("inf")
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return float(d[np.triu_indices(len(positions), 1)].min())
