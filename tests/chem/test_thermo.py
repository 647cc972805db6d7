"""RRHO thermochemistry against ASE's independent ``IdealGasThermo`` (water, ethanol, at GFN2-xTB
minima with their xTB frequencies), the quasi-RRHO low-frequency treatment, and Eyring rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import molecule
from ase.optimize import BFGS
from ase.thermochemistry import IdealGasThermo

from aiida_hip.chem.reference import XTBReference
from aiida_hip.chem.thermo import eyring_rate, rrho
from aiida_hip.chem.units import INVCM_TO_EV
from aiida_hip.chem.vibrations import analyse


def xtb_minimum(name: str):
    """An xTB-relaxed molecule, its energy (eV) and wavenumbers (cm^-1)."""
    from tblite.ase import TBLite

    atoms = molecule(name)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=300)
    out = XTBReference().predict(atoms.numbers, atoms.positions, hessian="finite-difference")
    vib = analyse(atoms.numbers, atoms.positions, out["hessian"])
    assert vib.n_imaginary == 0
    return atoms, out["energy"], vib.frequencies


@pytest.mark.parametrize(("name", "sigma"), [("H2O", 2), ("CH3CH2OH", 1)])
@pytest.mark.parametrize("temperature", [298.15, 600.0])
def test_harmonic_matches_ase(name, sigma, temperature):
    atoms, energy, freqs = xtb_minimum(name)
    ours = rrho(
        atoms.numbers, atoms.positions, freqs, energy, temperature, symmetry_number=sigma, low_frequency="harmonic"
    )
    ase = IdealGasThermo(
        vib_energies=np.asarray(freqs) * INVCM_TO_EV,
        geometry="nonlinear",
        potentialenergy=energy,
        atoms=atoms,
        symmetrynumber=sigma,
        spin=0,
        ignore_imag_modes=True,
    )
    assert ours.zpe == pytest.approx(ase.get_ZPE_correction(), abs=1e-9)
    assert ours.enthalpy == pytest.approx(ase.get_enthalpy(temperature, verbose=False), abs=1e-6)
    assert ours.entropy == pytest.approx(ase.get_entropy(temperature, 101325.0, verbose=False), rel=1e-6)
    assert ours.gibbs_energy == pytest.approx(ase.get_gibbs_energy(temperature, 101325.0, verbose=False), abs=1e-6)


def test_water_reference_values():
    """Standard molar entropy of water vapour is 188.8 J/(mol K) (NIST); RRHO with xTB modes is close."""
    atoms, energy, freqs = xtb_minimum("H2O")
    result = rrho(atoms.numbers, atoms.positions, freqs, energy, symmetry_number=2, low_frequency="harmonic")
    molar = result.entropy * 96485.33212  # eV/K -> J/(mol K)
    assert molar == pytest.approx(188.8, abs=1.0)
    assert 0.52 < result.zpe < 0.60  # harmonic ZPE of water ~0.57 eV (experiment-derived); xTB 0.55


def test_qrrho_tames_soft_modes_and_leaves_stiff_ones():
    atoms, energy, freqs = xtb_minimum("CH3CH2OH")
    harmonic = rrho(atoms.numbers, atoms.positions, freqs, energy, low_frequency="harmonic")
    quasi = rrho(atoms.numbers, atoms.positions, freqs, energy)
    assert quasi.enthalpy == harmonic.enthalpy and quasi.zpe == harmonic.zpe
    assert quasi.entropy_terms["translational"] == harmonic.entropy_terms["translational"]

    # a spurious soft mode: its harmonic entropy diverges as the wavenumber goes to zero (k_B ln 10 per
    # decade); the quasi-RRHO one is a free rotor's (half that per decade) and saturates once the
    # rotor's moment reaches Grimme's average 1e-44 kg m^2 (below ~0.03 cm^-1)
    def entropy(wavenumber: float, low_frequency: str) -> float:
        soft = np.concatenate([[wavenumber], freqs])
        return rrho(atoms.numbers, atoms.positions, soft, energy, low_frequency=low_frequency).entropy

    decade_h = entropy(0.5, "harmonic") - entropy(5.0, "harmonic")
    decade_q = entropy(0.5, "qrrho") - entropy(5.0, "qrrho")
    assert decade_h == pytest.approx(8.617333262e-5 * math.log(10), rel=1e-3)
    assert decade_q == pytest.approx(0.5 * decade_h, rel=0.05)
    saturated = entropy(1e-4, "qrrho") - entropy(1e-3, "qrrho")
    assert 0 < saturated < 0.05 * (entropy(1e-4, "harmonic") - entropy(1e-3, "harmonic"))
    # and stiff modes (> 500 cm^-1) are left as they are
    stiff = freqs[freqs > 500]
    assert rrho(atoms.numbers, atoms.positions, stiff, energy).entropy == pytest.approx(
        rrho(atoms.numbers, atoms.positions, stiff, energy, low_frequency="harmonic").entropy, rel=1e-4
    )


def test_imaginary_mode_is_left_out():
    atoms, energy, freqs = xtb_minimum("H2O")
    base = rrho(atoms.numbers, atoms.positions, freqs, energy)
    with_imag = rrho(atoms.numbers, atoms.positions, np.concatenate([[-1500.0], freqs]), energy)
    assert with_imag.n_modes_used == base.n_modes_used == 3
    assert with_imag.gibbs_energy == base.gibbs_energy


def test_eyring_rate():
    kt_h = 1.380649e-23 * 298.15 / 6.62607015e-34  # 6.21e12 1/s
    assert eyring_rate(0.0) == pytest.approx(kt_h)
    # 1 eV at room temperature: ~1e-4 1/s; every 0.0592 eV (kT ln 10) is one decade
    assert eyring_rate(1.0) == pytest.approx(kt_h * math.exp(-1.0 / (8.617333262e-5 * 298.15)), rel=1e-4)
    assert eyring_rate(0.5) / eyring_rate(0.5 + 0.05916) == pytest.approx(10.0, rel=1e-3)
    with pytest.raises(ValueError):
        eyring_rate(1.0, temperature=0.0)
