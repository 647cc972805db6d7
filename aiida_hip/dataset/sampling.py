"""Thermal normal-mode displacements around stationary points (minima and saddle regions)."""

from __future__ import annotations

import numpy as np

from ..chem.units import KB_EV_PER_K
from ..chem.vibrations import atom_masses, eckart_project, mass_weight

#: Soft and imaginary modes are sampled as if their curvature were this (eV/A^2/amu), about 130 cm^-1.
MIN_CURVATURE = 0.01


def normal_mode_samples(
    numbers,
    positions: np.ndarray,
    hessian: np.ndarray,
    count: int,
    rng: np.random.Generator,
    temperature: tuple[float, float] = (300.0, 1200.0),
    max_shift: float = 0.35,
    min_distance: float = 0.6,
) -> list[np.ndarray]:
    """``count`` geometries displaced along the normal modes with classical thermal amplitudes.

    Each sample draws a temperature in ``temperature`` (K); mode k gets amplitude N(0, kT / lambda_k)
    in mass-weighted coordinates. Samples that move an atom more than ``max_shift`` A are scaled
    down; samples with atoms closer than ``min_distance`` A are dropped.
    """
    numbers = np.asarray(numbers)
    masses = atom_masses(numbers)
    projected, basis = eckart_project(mass_weight(hessian, masses), positions, masses)
    vals, vecs = np.linalg.eigh(projected)
    curv = np.maximum(np.abs(vals), MIN_CURVATURE)
    modes = basis.T @ vecs  # mass-weighted Cartesian, columns
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(masses, 3))
    out = []
    for _ in range(count * 3):
        if len(out) >= count:
            break
        kt = KB_EV_PER_K * rng.uniform(*temperature)
        amp = rng.normal(size=curv.size) * np.sqrt(kt / curv)
        shift = ((modes @ amp) * inv_sqrt_m).reshape(-1, 3)
        largest = np.linalg.norm(shift, axis=1).max()
        if largest > max_shift:
            shift *= max_shift / largest
        new = positions + shift
        d = np.linalg.norm(new[:, None] - new[None], axis=-1) + np.eye(len(numbers)) * 1e3
        if d.min() >= min_distance:
            out.append(new)
    return out
