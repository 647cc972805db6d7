"""Geometry helpers that need only NumPy: superposition, RMSD, shortest distance (Angstrom), and the
rigid-body (Eckart) vectors that the vibrational analysis and the model's spectral losses project out."""

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


#: Relative size below which a rigid-body vector counts as zero (the rotation about a linear axis).
_RIGID_TOL = 1e-6


def inertia_tensor(positions: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions about the centre of mass (N, 3) and the inertia tensor there (3, 3), amu A^2."""
    positions = np.asarray(positions, dtype=np.float64)
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    inertia = np.zeros((3, 3))
    for m, r in zip(masses, centred, strict=True):
        inertia += m * (np.dot(r, r) * np.eye(3) - np.outer(r, r))
    return centred, inertia


def rigid_body_vectors(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Mass-weighted translation and rotation vectors (d, 3N), d = 6, or 5 for linear molecules."""
    positions = np.asarray(positions, dtype=np.float64)
    sqrt_m = np.sqrt(masses)
    centred, inertia = inertia_tensor(positions, masses)
    _, axes = np.linalg.eigh(inertia)
    vectors = []
    for a in range(3):
        t = np.zeros_like(positions)
        t[:, a] = sqrt_m
        vectors.append(t.reshape(-1))
    for k in range(3):
        rot = sqrt_m[:, None] * np.cross(axes[:, k], centred)
        vectors.append(rot.reshape(-1))
    vectors = np.array(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    return vectors[norms > _RIGID_TOL * norms.max()]


def vibrational_basis(positions: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, bool]:
    """Orthonormal basis (3N - d, 3N) of the vibrational subspace (SVD null space of the Eckart vectors)."""
    rigid = rigid_body_vectors(positions, masses)
    u, s, _ = np.linalg.svd(rigid.T, full_matrices=True)
    rank = int((s > _RIGID_TOL * s.max()).sum())
    return u[:, rank:].T, rank == 5
