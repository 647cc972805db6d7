"""Ideal-gas rigid-rotor / harmonic-oscillator thermochemistry and Eyring rate constants.

Everything in eV, K and Pa. Imaginary modes (negative wavenumbers; the reaction coordinate of a TS)
are left out, as transition-state theory requires. Low-frequency modes: with ``low_frequency="qrrho"``
(the default) vibrational entropies follow Grimme's quasi-RRHO interpolation (Chem. Eur. J. 2012,
18, 9955): below about 100 cm^-1 a mode is treated more and more as a free rotor, so that floppy
torsions, whose harmonic entropy diverges as the wavenumber goes to zero, do not dominate Gibbs
energies; enthalpies stay harmonic. ``low_frequency="harmonic"`` is the plain RRHO model (what
ASE's ``IdealGasThermo`` computes, against which the tests check this module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..common.geometry import inertia_tensor
from .units import (
    AMU_TO_KG,
    ANGSTROM_TO_M,
    BOLTZMANN_JK,
    EV_TO_J,
    INVCM_TO_EV,
    KB_EV_PER_K,
    LIGHT_SPEED_CM_PER_S,
    PLANCK_JS,
)
from .vibrations import atom_masses, zero_point_energy

#: Grimme's quasi-RRHO: interpolation wavenumber (cm^-1) and average moment of inertia (kg m^2)
QRRHO_CUTOFF_CM1 = 100.0
_QRRHO_BAV = 1e-44
STANDARD_PRESSURE = 101325.0


@dataclass(frozen=True)
class Thermochemistry:
    """Energies in eV, entropies in eV/K, at ``temperature`` K and ``pressure`` Pa."""

    temperature: float
    pressure: float
    electronic_energy: float
    zpe: float
    enthalpy: float  # E + ZPE + thermal corrections (translation, rotation, vibration) + kT
    entropy: float
    gibbs_energy: float  # enthalpy - T S
    entropy_terms: dict
    n_modes_used: int
    low_frequency: str

    def to_dict(self) -> dict:
        return asdict(self)


def _principal_moments_kg_m2(numbers: Sequence[int], positions: np.ndarray) -> np.ndarray:
    _, tensor = inertia_tensor(positions, atom_masses(numbers))
    return np.linalg.eigvalsh(tensor) * AMU_TO_KG * ANGSTROM_TO_M**2


def rrho(
    numbers: Sequence[int],
    positions: np.ndarray,
    frequencies_cm1: Sequence[float],
    electronic_energy: float,
    temperature: float = 298.15,
    pressure: float = STANDARD_PRESSURE,
    symmetry_number: int = 1,
    spin: float = 0.0,
    low_frequency: str = "qrrho",
) -> Thermochemistry:
    """Ideal-gas thermochemistry of one molecule from its vibrational wavenumbers (cm^-1).

    ``frequencies_cm1`` are the 3N-6 (3N-5) vibrational modes as :func:`analyse` returns them;
    negative (imaginary) ones are skipped. ``spin`` is the total spin S (multiplicity 2S + 1).
    """
    if temperature <= 0 or pressure <= 0:
        raise ValueError("temperature and pressure must be positive")
    if low_frequency not in ("qrrho", "harmonic"):
        raise ValueError(f"low_frequency must be 'qrrho' or 'harmonic', got {low_frequency!r}")
    kt_j = BOLTZMANN_JK * temperature
    kt = KB_EV_PER_K * temperature
    mass = atom_masses(numbers).sum() * AMU_TO_KG

    # translation: Sackur-Tetrode; enthalpy 3/2 kT (+ kT for pV, added below)
    s_trans = BOLTZMANN_JK * (math.log((2 * math.pi * mass * kt_j / PLANCK_JS**2) ** 1.5 * kt_j / pressure) + 2.5)
    h_thermal = 1.5 * kt

    # rotation: rigid rotor, classical partition function
    inertia = _principal_moments_kg_m2(numbers, positions)
    linear = inertia[0] < 1e-3 * inertia[2]
    if len(numbers) == 1:
        s_rot = 0.0
    elif linear:
        q_rot = 8 * math.pi**2 * inertia[2] * kt_j / (symmetry_number * PLANCK_JS**2)
        s_rot = BOLTZMANN_JK * (math.log(q_rot) + 1.0)
        h_thermal += kt
    else:
        scale = (8 * math.pi**2 * kt_j / PLANCK_JS**2) ** 1.5
        q_rot = math.sqrt(math.pi * float(np.prod(inertia))) / symmetry_number * scale
        s_rot = BOLTZMANN_JK * (math.log(q_rot) + 1.5)
        h_thermal += 1.5 * kt

    # vibration: harmonic oscillators (real modes only)
    nu = np.asarray([f for f in frequencies_cm1 if f > 0], dtype=float)
    energies = nu * INVCM_TO_EV
    zpe = zero_point_energy(nu)
    x = energies / kt
    h_thermal += float(np.sum(energies / np.expm1(x)))
    s_vib_modes = BOLTZMANN_JK * (x / np.expm1(x) - np.log1p(-np.exp(-x)))
    if low_frequency == "qrrho" and len(nu):
        mu = PLANCK_JS / (8 * math.pi**2 * nu * LIGHT_SPEED_CM_PER_S)  # moment of a rotor with that wavenumber
        mu_eff = mu * _QRRHO_BAV / (mu + _QRRHO_BAV)
        s_free = BOLTZMANN_JK * (0.5 + np.log(np.sqrt(8 * math.pi**3 * mu_eff * kt_j / PLANCK_JS**2)))
        weight = 1.0 / (1.0 + (QRRHO_CUTOFF_CM1 / nu) ** 4)
        s_vib_modes = weight * s_vib_modes + (1 - weight) * s_free
    s_vib = float(np.sum(s_vib_modes))
    s_el = BOLTZMANN_JK * math.log(2 * spin + 1)

    to_ev = 1.0 / EV_TO_J
    terms = {
        "translational": s_trans * to_ev,
        "rotational": s_rot * to_ev,
        "vibrational": s_vib * to_ev,
        "electronic": s_el * to_ev,
    }
    entropy = sum(terms.values())
    enthalpy = electronic_energy + zpe + h_thermal + kt
    return Thermochemistry(
        temperature=temperature,
        pressure=pressure,
        electronic_energy=electronic_energy,
        zpe=zpe,
        enthalpy=enthalpy,
        entropy=entropy,
        gibbs_energy=enthalpy - temperature * entropy,
        entropy_terms=terms,
        n_modes_used=len(nu),
        low_frequency=low_frequency,
    )


def eyring_rate(barrier_ev: float, temperature: float = 298.15, transmission: float = 1.0) -> float:
    """Unimolecular rate constant (1/s) for a Gibbs energy barrier (eV): kappa k_B T / h exp(-dG/kT)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    return transmission * BOLTZMANN_JK * temperature / PLANCK_JS * math.exp(-barrier_ev / (KB_EV_PER_K * temperature))


#: how reaction thermochemistry describes its low-frequency treatment
LOW_FREQUENCY_NOTE = f"qrrho (Grimme 2012, {QRRHO_CUTOFF_CM1:.0f} cm^-1)"


def reaction_thermochemistry(species: dict[str, tuple], temperature: float = 298.15) -> dict:
    """RRHO (quasi-RRHO entropies) of reactant, TS and product, Gibbs and enthalpy barriers both ways and
    Eyring rates (unimolecular, symmetry number 1).

    ``species`` maps ``reactant``, ``ts`` and ``product`` to ``(numbers, positions, frequencies_cm1,
    electronic_energy_ev)``; the TS's imaginary mode is left out by :func:`rrho`.
    """
    out_species = {}
    for role in ("reactant", "ts", "product"):
        numbers, positions, frequencies, energy = species[role]
        result = rrho(numbers, positions, frequencies, energy, temperature).to_dict()
        out_species[role] = {k: v for k, v in result.items() if k not in ("temperature", "pressure", "low_frequency")}
    out = {
        "temperature_k": float(temperature),
        "pressure_pa": STANDARD_PRESSURE,
        "low_frequency": LOW_FREQUENCY_NOTE,
        "species": out_species,
    }
    for direction, start in (("forward", "reactant"), ("reverse", "product")):
        dg = out_species["ts"]["gibbs_energy"] - out_species[start]["gibbs_energy"]
        out[f"gibbs_barrier_{direction}_ev"] = dg
        out[f"enthalpy_barrier_{direction}_ev"] = out_species["ts"]["enthalpy"] - out_species[start]["enthalpy"]
        out[f"rate_{direction}_per_s"] = eyring_rate(dg, temperature)
    return out
