"""Harmonic vibrational analysis: mass weighting, Eckart projection, frequencies, modes, ZPE, classification.

Follows the seed's appendix A.6.4: centre at the centre of mass, mass-weight the Cartesian Hessian,
build the translation and rotation (Eckart) vectors from the principal axes, drop the rotation about
the axis of a linear molecule, and diagonalise the Hessian in the SVD null space of those vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_masses

from ..common.geometry import vibrational_basis
from .units import EIGENVALUE_TO_INVCM, INVCM_TO_EV

#: Modes with a wavenumber below ``-IMAGINARY_THRESHOLD`` cm^-1 count as imaginary. Softer negative
#: modes are treated as numerical noise of the Hessian (typical of finite differences and ML models
#: around floppy torsions) and are not counted.
IMAGINARY_THRESHOLD = 20.0


@dataclass(frozen=True)
class VibrationalAnalysis:
    """Result of :func:`analyse`; wavenumbers in cm^-1 with imaginary ones reported as negative."""

    frequencies: np.ndarray  # (3N - d,) ascending, cm^-1
    modes: np.ndarray  # (3N - d, N, 3) normalised Cartesian displacements, same order
    eigenvalues: np.ndarray  # (3N - d,) of the projected mass-weighted Hessian, eV / (A^2 amu)
    zpe: float  # eV, from the real modes only
    n_imaginary: int
    is_linear: bool
    imaginary_threshold: float = IMAGINARY_THRESHOLD
    masses: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def classification(self) -> str:
        """``minimum``, ``transition state`` (first-order saddle) or ``saddle of order n``."""
        return classify(self.n_imaginary)

    @property
    def num_rigid(self) -> int:
        return 5 if self.is_linear else 6


def classify(n_imaginary: int) -> str:
    if n_imaginary == 0:
        return "minimum"
    if n_imaginary == 1:
        return "transition state"
    return f"saddle of order {n_imaginary}"


def atom_masses(numbers: Sequence[int]) -> np.ndarray:
    """Standard atomic weights (amu) from ASE's table."""
    return np.asarray(atomic_masses[np.asarray(numbers, dtype=int)], dtype=np.float64)


def mass_weight(hessian: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """M^-1/2 H M^-1/2 with M = diag(m1, m1, m1, ..., mN, mN, mN)."""
    inv_sqrt = 1.0 / np.sqrt(np.repeat(masses, 3))
    return hessian * inv_sqrt[:, None] * inv_sqrt[None, :]


def eckart_project(hessian_mw: np.ndarray, positions: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project a mass-weighted Hessian on the vibrational subspace: ``(P H P^T symmetrised, P)``."""
    basis, _ = vibrational_basis(positions, masses)
    projected = basis @ hessian_mw @ basis.T
    return 0.5 * (projected + projected.T), basis


def eigenvalues_to_wavenumbers(eigenvalues: np.ndarray) -> np.ndarray:
    """eV/(A^2 amu) -> cm^-1, negative eigenvalues as negative (imaginary) wavenumbers."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * EIGENVALUE_TO_INVCM


def zero_point_energy(frequencies: np.ndarray) -> float:
    """ZPE = 1/2 sum h c nu over the real (positive) modes, in eV."""
    real = frequencies[frequencies > 0]
    return float(0.5 * real.sum() * INVCM_TO_EV)


def analyse(
    numbers: Sequence[int],
    positions: np.ndarray,
    hessian: np.ndarray,
    masses: np.ndarray | None = None,
    imaginary_threshold: float = IMAGINARY_THRESHOLD,
) -> VibrationalAnalysis:
    """Harmonic analysis of a Cartesian Hessian (eV/A^2) at ``positions`` (A).

    Masses default to the standard atomic weights. Negative modes softer than ``imaginary_threshold``
    cm^-1 are not counted as imaginary; the ZPE sums every real (positive) mode.
    """
    numbers = np.asarray(numbers, dtype=int)
    positions = np.asarray(positions, dtype=np.float64)
    hessian = np.asarray(hessian, dtype=np.float64)
    n = numbers.size
    if positions.shape != (n, 3):
        raise ValueError(f"positions must have shape ({n}, 3), got {positions.shape}")
    if hessian.shape != (3 * n, 3 * n):
        raise ValueError(f"hessian must have shape ({3 * n}, {3 * n}) for {n} atoms, got {hessian.shape}")
    if not (np.all(np.isfinite(hessian)) and np.all(np.isfinite(positions))):
        raise ValueError("hessian and positions must be finite")
    if n < 2:
        raise ValueError("a vibrational analysis needs at least two atoms")
    masses = atom_masses(numbers) if masses is None else np.asarray(masses, dtype=np.float64)
    if masses.shape != (n,) or np.any(masses <= 0):
        raise ValueError("masses must be positive, one per atom")

    hessian = 0.5 * (hessian + hessian.T)
    projected, basis = eckart_project(mass_weight(hessian, masses), positions, masses)
    eigenvalues, vectors = np.linalg.eigh(projected)
    frequencies = eigenvalues_to_wavenumbers(eigenvalues)
    # Mass-weighted normal coordinates -> Cartesian displacements, normalised per mode.
    cartesian = (basis.T @ vectors) / np.sqrt(np.repeat(masses, 3))[:, None]
    cartesian /= np.linalg.norm(cartesian, axis=0, keepdims=True)
    modes = cartesian.T.reshape(-1, n, 3)
    return VibrationalAnalysis(
        frequencies=frequencies,
        modes=modes,
        eigenvalues=eigenvalues,
        zpe=zero_point_energy(frequencies),
        n_imaginary=int((frequencies < -imaginary_threshold).sum()),
        is_linear=basis.shape[0] == 3 * n - 5,
        imaginary_threshold=imaginary_threshold,
        masses=masses,
    )
