"""Vibrational analysis checked against analytic results and an independent implementation (ASE)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.optimize import BFGS
from ase.vibrations import Vibrations
from scipy import constants as sc

from aiida_hip.chem.reference import XTBReference
from aiida_hip.chem.vibrations import analyse, eckart_project, mass_weight, vibrational_basis


def test_diatomic_spring_frequency_from_first_principles():
    """A harmonic spring k between two atoms: nu = sqrt(k / mu) / (2 pi c), computed with scipy's constants."""
    k = 30.0  # eV/A^2
    numbers, pos = [6, 8], np.array([[0.0, 0.0, 0.0], [1.13, 0.0, 0.0]])
    block = np.zeros((3, 3))
    block[0, 0] = k
    H = np.block([[block, -block], [-block, block]])
    va = analyse(numbers, pos, H)
    m1, m2 = 12.011, 15.999
    mu = m1 * m2 / (m1 + m2) * sc.atomic_mass
    expected = np.sqrt(k * sc.electron_volt / 1e-20 / mu) / (2 * np.pi * sc.c * 100)
    assert va.is_linear and va.frequencies.shape == (1,)
    assert va.frequencies[0] == pytest.approx(expected, rel=1e-6)
    assert va.zpe == pytest.approx(0.5 * sc.h * sc.c * 100 * expected / sc.electron_volt, rel=1e-6)
    assert va.classification == "minimum"


@pytest.fixture(scope="module")
def xtb_minima(tmp_path_factory):
    """Water, ethanol and CO2 relaxed with GFN2-xTB, with our FD Hessian and ASE's Vibrations result."""
    from tblite.ase import TBLite

    out = {}
    workdir = tmp_path_factory.mktemp("vib")
    for name in ("H2O", "CH3CH2OH", "CO2"):
        atoms = molecule(name)
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        BFGS(atoms, logfile=None).run(fmax=1e-4)
        hessian = XTBReference(workers=1).predict(atoms.numbers, atoms.positions)["hessian"]
        vib = Vibrations(atoms, name=str(workdir / name), delta=0.005, nfree=2)
        vib.run()
        out[name] = (atoms.copy(), hessian, vib.get_frequencies(), vib.get_energies())
    return out


@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH", "CO2"])
def test_frequencies_and_zpe_match_ase(xtb_minima, name):
    atoms, hessian, ase_freqs, ase_energies = xtb_minima[name]
    va = analyse(atoms.numbers, atoms.positions, hessian)
    n_vib = 3 * len(atoms) - (5 if name == "CO2" else 6)
    assert va.frequencies.shape == (n_vib,)
    assert va.is_linear == (name == "CO2")
    # ASE does not project: its 3N - d highest modes are the vibrations.
    reference = np.sort(np.real(ase_freqs))[-n_vib:]
    np.testing.assert_allclose(va.frequencies, reference, atol=1.0)
    zpe_ase = 0.5 * np.sort(np.real(ase_energies))[-n_vib:].sum()
    assert va.zpe == pytest.approx(zpe_ase, abs=1e-4)
    assert va.n_imaginary == 0 and va.classification == "minimum"
    modes = va.modes.reshape(n_vib, -1)
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 1.0)


@pytest.mark.parametrize(("name", "n_zero"), [("H2O", 6), ("CH3CH2OH", 6), ("CO2", 5)])
def test_eckart_projection_leaves_rigid_zero_modes(xtb_minima, name, n_zero):
    atoms, hessian, _, _ = xtb_minima[name]
    from aiida_hip.chem.vibrations import atom_masses

    masses = atom_masses(atoms.numbers)
    projected, basis = eckart_project(mass_weight(hessian, masses), atoms.positions, masses)
    full = basis.T @ projected @ basis  # back in the 3N-dimensional mass-weighted space
    eig = np.linalg.eigvalsh(full)
    assert int((np.abs(eig) < 1e-8 * np.abs(eig).max()).sum()) == n_zero
    assert vibrational_basis(atoms.positions, masses)[1] == (n_zero == 5)


def test_planar_ammonia_is_a_transition_state():
    """NH3 forced planar: the umbrella inversion is the one imaginary mode."""
    r = 1.01
    pos = np.array([[0.0, 0.0, 0.0]] + [[r * np.cos(a), r * np.sin(a), 0.0] for a in (0, 2 * np.pi / 3, 4 * np.pi / 3)])
    H = XTBReference(workers=1).predict([7, 1, 1, 1], pos)["hessian"]
    va = analyse([7, 1, 1, 1], pos, H)
    assert va.n_imaginary == 1 and va.classification == "transition state"
    imag = va.modes[0]
    # The imaginary mode moves atoms out of the plane (z), not within it.
    assert np.abs(imag[:, 2]).sum() > 10 * np.abs(imag[:, :2]).sum()
    assert va.frequencies[0] < -300


def test_bad_input():
    with pytest.raises(ValueError, match="hessian must have shape"):
        analyse([8, 1, 1], np.zeros((3, 3)) + np.eye(3), np.zeros((6, 6)))
    with pytest.raises(ValueError, match="finite"):
        analyse([1, 1], [[0, 0, 0], [0.74, 0, 0]], np.full((6, 6), np.nan))


def test_threshold_controls_imaginary_count():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    H = np.zeros((6, 6))
    H[0, 0] = H[3, 3] = -1e-4
    H[0, 3] = H[3, 0] = 1e-4
    va = analyse(atoms.numbers, atoms.positions, H)
    assert va.frequencies[0] < 0 and va.n_imaginary == 0  # softer than 20 cm^-1: noise
    assert analyse(atoms.numbers, atoms.positions, H, imaginary_threshold=0.0).n_imaginary == 1
