"""The one place for physical constants and unit conversions (CODATA values as ASE ships them).

The API of aiida-hip speaks eV, Angstrom, eV/A and eV/A^2, masses in amu and wavenumbers in cm^-1;
pysisyphus speaks Hartree and Bohr, so conversions happen at that boundary and only with these.
"""

from __future__ import annotations

import math

from ase import units as _ase

HARTREE_TO_EV: float = _ase.Hartree
EV_TO_HARTREE: float = 1.0 / HARTREE_TO_EV
BOHR_TO_ANGSTROM: float = _ase.Bohr
ANGSTROM_TO_BOHR: float = 1.0 / BOHR_TO_ANGSTROM

#: Hartree/Bohr -> eV/A (forces, gradients).
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = HARTREE_TO_EV / BOHR_TO_ANGSTROM
#: Hartree/Bohr^2 -> eV/A^2 (Hessians).
HARTREE_PER_BOHR2_TO_EV_PER_ANGSTROM2: float = HARTREE_TO_EV / BOHR_TO_ANGSTROM**2

#: 1 cm^-1 in eV (h c / cm).
INVCM_TO_EV: float = _ase.invcm
KB_EV_PER_K: float = _ase.kB

#: SI constants for thermochemistry and rates (ASE's CODATA set, like everything here).
PLANCK_JS: float = _ase._hplanck
BOLTZMANN_JK: float = _ase._k
EV_TO_J: float = _ase._e
AMU_TO_KG: float = _ase._amu
ANGSTROM_TO_M: float = 1e-10
LIGHT_SPEED_CM_PER_S: float = _ase._c * 100.0

# SI constants used to turn eigenvalues of the mass-weighted Hessian into wavenumbers.
_EV_J = _ase._e
_AMU_KG = _ase._amu
_C_CM_PER_S = _ase._c * 100.0
_ANGSTROM_M = 1e-10

#: sqrt(eV / (A^2 amu)) in rad/s, divided by 2 pi c: eigenvalue (eV/A^2/amu) -> wavenumber^2 factor.
EIGENVALUE_TO_INVCM: float = math.sqrt(_EV_J / (_ANGSTROM_M**2 * _AMU_KG)) / (2.0 * math.pi * _C_CM_PER_S)


def hartree_to_ev(value):
    return value * HARTREE_TO_EV


def ev_to_hartree(value):
    return value * EV_TO_HARTREE


def angstrom_to_bohr(value):
    return value * ANGSTROM_TO_BOHR


def bohr_to_angstrom(value):
    return value * BOHR_TO_ANGSTROM
