"""Vibrational spectra in torch, for losses that look at what TS search reads off a Hessian.

A TS optimiser follows the lowest eigenmodes of the Hessian and counts its negative eigenvalues, after
the rigid-body motions are projected out of the mass-weighted matrix. The metrics of
``aiida_hip.dataset.evaluate`` do the same with numpy; this module gives the differentiable twin, so a
loss can act on exactly the eigenvalues that decide ``minimum`` or ``transition state``.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.data import atomic_masses
from torch import Tensor

from ..common.geometry import vibrational_basis as rigid_complement

#: Wavenumber (cm^-1) of a mass-weighted eigenvalue of 1 eV/(A^2 amu): sqrt(eV / (A^2 amu)) / (2 pi c).
EIGENVALUE_TO_INVCM = 521.4709

#: Softest negative mode (cm^-1) counted as imaginary, as in ``aiida_hip.chem.vibrations``.
IMAGINARY_THRESHOLD_INVCM = 20.0

#: The same threshold as a mass-weighted eigenvalue, eV/(A^2 amu).
IMAGINARY_EIGENVALUE = (IMAGINARY_THRESHOLD_INVCM / EIGENVALUE_TO_INVCM) ** 2


def vibrational_basis(numbers: np.ndarray, positions: np.ndarray) -> tuple[Tensor, Tensor]:
    """Orthonormal basis of the mass-weighted vibrations (3N, 3N - d) and 1/sqrt(m) per coordinate (3N,).

    ``d`` is 6, or 5 for a linear molecule. Depends on the geometry only, so it carries no gradient.
    """
    masses = atomic_masses[np.asarray(numbers, dtype=int)]  # (N,)
    basis, _ = rigid_complement(np.asarray(positions, dtype=np.float64), masses)  # (3N - d, 3N)
    return torch.as_tensor(basis.T.copy()), torch.as_tensor(np.repeat(1.0 / np.sqrt(masses), 3))


def internal_hessian(hessian: Tensor, basis: Tensor, inv_sqrt_m: Tensor) -> Tensor:
    """Projected mass-weighted Hessian (3N - d, 3N - d), eV/(A^2 amu), from a Cartesian one (eV/A^2)."""
    basis = basis.to(hessian)
    mw = hessian * inv_sqrt_m.to(hessian)[:, None] * inv_sqrt_m.to(hessian)[None, :]  # (3N, 3N)
    projected = basis.T @ mw @ basis  # (3N - d, 3N - d)
    return 0.5 * (projected + projected.T)


def count_imaginary(eigenvalues: Tensor, threshold: float = IMAGINARY_EIGENVALUE) -> int:
    """Modes below ``-threshold`` (eV/(A^2 amu)): the imaginary count of ``aiida_hip.chem.vibrations``."""
    return int((eigenvalues < -threshold).sum())
