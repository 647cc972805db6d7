"""The pysisyphus/ASE adapters: units at the boundary, rigid-body projection, convergence presets."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from aiida_hip.chem.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from aiida_hip.pipeline import PRESETS, Evaluator, Level, LevelError, ase_calculator, get_convergence, pysis_calculator
from aiida_hip.pipeline.calculators import project_rigid
from aiida_hip.pipeline.common import choose_root, to_atoms, to_geometry


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(Level(calculator="hip", hessian="predicted"))


def test_presets_are_table_13():
    assert get_convergence("normal").max_force == 4.5e-4
    assert get_convergence("normal").rms_force == 3.0e-4
    assert get_convergence("tight").max_step == 6.0e-5
    assert [p.pysisyphus for p in PRESETS.values()] == ["gau_loose", "gau", "gau_tight", "gau_vtight"]
    from pysisyphus.optimizers.Optimizer import CONV_THRESHS

    for preset in PRESETS.values():  # the names we hand to pysisyphus mean the same numbers
        assert CONV_THRESHS[preset.pysisyphus] == pytest.approx(
            (preset.max_force, preset.rms_force, preset.max_step, preset.rms_step)
        )
    with pytest.raises(ValueError, match="unknown convergence preset"):
        get_convergence("sloppy")


def test_level_validation():
    with pytest.raises(LevelError, match="calculator"):
        Level(calculator="mp2")
    with pytest.raises(LevelError, match="hessian"):
        Level(hessian="exact")
    assert Level(calculator="xtb", hessian="none").exact_hessian == "reference"
    with pytest.raises(LevelError, match="neutral"):  # refused when the level is made, before any model loads
        Level(charge=1)


def test_pysisyphus_boundary_is_hartree_bohr(evaluator):
    atoms = molecule("CH3OH")
    calc = pysis_calculator(evaluator)
    geom = to_geometry(atoms, calc)
    ref = evaluator.model.predict(atoms.numbers, atoms.positions, hessian="predicted")
    assert geom.energy * HARTREE_TO_EV == pytest.approx(ref["energy"], abs=1e-8)
    forces = np.asarray(geom.forces).reshape(-1, 3) * HARTREE_TO_EV / BOHR_TO_ANGSTROM
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-8)
    hessian = np.asarray(geom.cart_hessian) * HARTREE_TO_EV / BOHR_TO_ANGSTROM**2
    np.testing.assert_allclose(hessian, project_rigid(ref["hessian"], atoms.positions), atol=1e-8)
    back = to_atoms(geom.atoms, geom.cart_coords)
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-12)
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()


def test_forces_are_minus_gradient_in_atomic_units(evaluator):
    """A central difference of pysisyphus energies (Hartree, Bohr) reproduces its forces."""
    atoms = molecule("H2O")
    calc = pysis_calculator(evaluator)
    coords = atoms.positions.reshape(-1) / BOHR_TO_ANGSTROM
    symbols = atoms.get_chemical_symbols()
    forces = calc.get_forces(symbols, coords)["forces"]
    h = 1e-4
    for k in (0, 4, 8):
        d = np.zeros_like(coords)
        d[k] = h
        e_plus = calc.get_energy(symbols, coords + d)["energy"]
        e_minus = calc.get_energy(symbols, coords - d)["energy"]
        assert -(e_plus - e_minus) / (2 * h) == pytest.approx(forces[k], abs=1e-6)


def test_rigid_projection_removes_translations_and_rotations(evaluator):
    atoms = molecule("CH3CH2OH")
    h = evaluator.hessian(atoms.numbers, atoms.positions)
    p = project_rigid(h, atoms.positions)
    np.testing.assert_allclose(p, p.T, atol=1e-10)
    shift = np.tile([0.3, -0.2, 0.5], len(atoms))
    assert np.abs(p @ shift).max() < 1e-8
    rotation = np.cross([0.0, 0.0, 1.0], atoms.positions - atoms.get_center_of_mass()).reshape(-1)
    assert np.abs(p @ rotation).max() < 1e-8
    eig = np.linalg.eigvalsh(p)
    assert np.sum(np.abs(eig) < 1e-8) >= 6


def test_ase_calculator_gives_hessian_for_sella(evaluator):
    atoms = molecule("H2O")
    atoms.calc = ase_calculator(evaluator)
    ref = evaluator.model.predict(atoms.numbers, atoms.positions)
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"])
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-10)
    assert atoms.calc.get_hessian(atoms).shape == (9, 9)


def test_root_choice_follows_the_tangent():
    eigenvalues = np.array([-2.0, -0.5, 0.0, 1.0])
    vectors = np.eye(4)
    assert choose_root(eigenvalues, vectors, np.array([0.1, 0.9, 0.0, 0.1])) == 1  # not the lowest
    # no negative mode: the non-trivial mode along the tangent, never the zero mode
    assert choose_root(np.array([0.0, 1.0, 2.0]), np.eye(3), np.array([0.9, 0.1, 0.3])) == 2


def test_a_run_away_ts_is_not_converged():
    """A "converged" geometry with an atom 6 A from all others is flagged, not reported as a TS."""
    from ase import Atoms

    from aiida_hip.pipeline.tsopt import TSOptResult, check_fragments

    apart = Atoms("CNH", positions=[[0, 0, 0], [1.17, 0, 0], [7.0, 0, 0]])
    result = check_fragments(TSOptResult(converged=True, n_cycles=5, message="converged", ts=apart))
    assert not result.converged and result.fragmented and "[2]" in result.message
    bonded = Atoms("CNH", positions=[[0, 0, 0], [1.17, 0, 0], [0.6, 1.0, 0]])
    assert check_fragments(TSOptResult(converged=True, n_cycles=5, message="converged", ts=bonded)).converged


def test_irc_profile_is_path_length_from_the_top():
    """The IRC energy profile: Cartesian path length, 0 at the highest point, forward end first."""
    from ase import Atoms

    from aiida_hip.pipeline.irc import IRCResult

    frames = [Atoms("H2", positions=[[0, 0, 0], [0.5 + 0.1 * k, 0, 0]]) for k in range(5)]
    result = IRCResult(True, "", trajectory=frames, energies_ev=[0.0, 0.4, 1.0, 0.6, 0.1])
    profile = result.profile()
    assert profile["s_angstrom"] == pytest.approx([-0.2, -0.1, 0.0, 0.1, 0.2])
    assert profile["energy_ev"] == [0.0, 0.4, 1.0, 0.6, 0.1]
    assert IRCResult(True, "", trajectory=frames, energies_ev=[0.0, 1.0]).profile() is None  # ends only
    assert result.summary()["profile"] == profile


def test_model_for_another_surface_loads_at_its_first_hessian():
    """A stage on the xTB surface that never asks for a HIP Hessian (path, frequencies, IRC of the two-level
    search) never loads torch; the first HIP Hessian loads it. Fresh interpreter: nothing imported before."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ase.build import molecule\n"
        "from aiida_hip.pipeline import Evaluator, Level\n"
        "e = Evaluator(Level(calculator='xtb', hessian='predicted'))\n"
        "a = molecule('CH3OH')\n"
        "e.gradient(a.numbers, a.positions)\n"
        "before = 'torch' in sys.modules\n"
        "e.hessian(a.numbers, a.positions)\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]
