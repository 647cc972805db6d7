"""GFN2-xTB reference through tblite: consistent derivatives, clear errors, spin handling."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_hip.chem.reference import ReferenceError, XTBReference, default_uhf
from aiida_hip.hip import InvalidMoleculeError

WATER_Z = np.array([8, 1, 1])
WATER_R = np.array([[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47]])


def test_forces_are_minus_gradient_of_energy():
    ref = XTBReference(workers=1)
    out = ref.predict(WATER_Z, WATER_R, hessian=None)
    h = 1e-4
    for atom, axis in [(0, 2), (1, 1)]:
        plus, minus = WATER_R.copy(), WATER_R.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        de = ref.predict(WATER_Z, plus, hessian=None)["energy"] - ref.predict(WATER_Z, minus, hessian=None)["energy"]
        assert out["forces"][atom, axis] == pytest.approx(-de / (2 * h), rel=1e-4, abs=1e-5)
    assert -14 * 27.2 < out["energy"] < -4 * 27.2  # GFN2-xTB water: about -5.07 Eh


def test_hessian_symmetric_and_translation_invariant():
    H = XTBReference(workers=1).predict(WATER_Z, WATER_R)["hessian"]
    assert np.array_equal(H, H.T)
    shift = np.tile(np.eye(3), (3, 1))  # rigid translations
    assert np.abs(H @ shift).max() < 1e-2 * np.abs(H).max()


def test_parallel_hessian_equals_serial():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    serial = XTBReference(workers=1)
    parallel = XTBReference(workers=2)
    parallel.PARALLEL_MIN_ATOMS = 2
    a = serial.predict(atoms.numbers, atoms.positions)["hessian"]
    b = parallel.predict(atoms.numbers, atoms.positions)["hessian"]
    # Serial runs restart each SCF from the previous displacement, workers start fresh: the SCF
    # tolerance (accuracy 1) leaves ~1e-3 eV/A^2 of noise in a central difference over 0.01 A.
    np.testing.assert_allclose(a, b, atol=2e-2)
    assert np.abs(a - b).mean() < 5e-3


def test_spin_defaults_and_errors():
    assert default_uhf([6, 1, 1, 1], 0) == 1  # methyl radical: doublet
    assert default_uhf([6, 1, 1, 1], 1) == 0
    methyl_xyz = [[0, 0, 0], [1.08, 0, 0], [-0.54, 0.94, 0], [-0.54, -0.94, 0]]
    methyl = XTBReference(workers=1).predict([6, 1, 1, 1], methyl_xyz, hessian=None)
    assert np.isfinite(methyl["energy"])
    with pytest.raises(ValueError, match="impossible"):
        XTBReference(multiplicity=2).predict(WATER_Z, WATER_R, hessian=None)
    with pytest.raises(InvalidMoleculeError, match="unsupported element"):
        XTBReference().predict([92, 1, 1], WATER_R, hessian=None)
    with pytest.raises(ValueError, match="finite-difference"):
        XTBReference().predict(WATER_Z, WATER_R, hessian="predicted")
    assert issubclass(ReferenceError, RuntimeError)


def test_dft_reference_analytic_hessian_matches_its_gradients():
    pytest.importorskip("pyscf")
    from aiida_hip.chem.reference import DFTReference

    ref = DFTReference(functional="hf", basis="sto-3g")
    out = ref.predict(WATER_Z, WATER_R)
    h = 1e-3
    plus, minus = WATER_R.copy(), WATER_R.copy()
    plus[0, 2] += h
    minus[0, 2] -= h
    column = -(ref.predict(WATER_Z, plus, hessian=None)["forces"] - ref.predict(WATER_Z, minus, hessian=None)["forces"])
    np.testing.assert_allclose(out["hessian"][:, 2], column.reshape(-1) / (2 * h), atol=0.05)
    assert np.array_equal(out["hessian"], out["hessian"].T)
    with pytest.raises(ValueError, match="analytic"):
        ref.predict(WATER_Z, WATER_R, hessian="finite-difference")
