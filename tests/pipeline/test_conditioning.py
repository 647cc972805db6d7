"""The conditioning step and the guarded Hessian feed: repairs approximate Hessians, never exact ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read

from aiida_hip.chem.reference import XTBReference
from aiida_hip.pipeline.conditioning import ConditioningSettings, condition, rigid_projector

TS = Path(__file__).parents[1] / "data" / "reactions" / "hcn_hnc" / "ts_reference.xyz"


@pytest.fixture(scope="module")
def methanol():
    atoms = molecule("CH3OH")
    hessian = XTBReference().predict(atoms.numbers, atoms.positions, hessian="finite-difference")["hessian"]
    return atoms, hessian


def _internal_spectrum(hessian, positions):
    proj, basis = rigid_projector(positions)
    values = np.linalg.eigvalsh(proj @ hessian @ proj)
    keep = np.argsort(np.abs(values))[basis.shape[1] :]  # drop the rigid-body zeros
    return np.sort(values[keep])


def _spoiled(hessian, positions, n_bad=3, rng=None):
    """The Hessian with its ``n_bad`` softest vibrational modes turned into spurious negative ones."""
    proj, _ = rigid_projector(positions)
    h = proj @ hessian @ proj
    values, vectors = np.linalg.eigh(h)
    order = np.argsort(np.abs(values))[6:]  # vibrational modes, softest first
    spoiled = values.copy()
    spoiled[order[:n_bad]] = -np.array([0.3, 0.2, 0.1])[:n_bad]
    return (vectors * spoiled) @ vectors.T, vectors[:, order[:n_bad]], vectors[:, order[n_bad:]]


def test_spurious_negative_modes_are_repaired(methanol):
    atoms, exact = methanol
    bad, bad_modes, good_modes = _spoiled(exact, atoms.positions)
    for kind, want in (("ts", 1), ("minimum", 0)):
        fixed, record = condition(bad, atoms.positions, kind)
        spectrum = _internal_spectrum(fixed, atoms.positions)
        assert int(np.sum(spectrum < 0)) == want, (kind, spectrum[:4])
        assert record.n_negative_before == 3 and record.n_repaired == 3 - want
        assert np.all(np.abs(spectrum) >= ConditioningSettings().floor - 1e-12)
        # eigenvectors unchanged: every untouched mode keeps its curvature exactly
        for v in good_modes.T:
            assert v @ fixed @ v == pytest.approx(v @ bad @ v, abs=1e-9)
    fixed, record = condition(bad, atoms.positions, "ts")
    lowest = bad_modes[:, 0]  # curvature -0.3: the mode a TS search follows by default
    assert lowest @ fixed @ lowest == pytest.approx(-0.3, abs=1e-9) and record.ts_mode_eigenvalue == pytest.approx(-0.3)


def test_tangent_mode_keeps_the_mode_along_the_tangent(methanol):
    atoms, exact = methanol
    bad, bad_modes, _ = _spoiled(exact, atoms.positions)
    tangent = bad_modes[:, 2] + 0.1 * bad_modes[:, 0]  # mostly the third spurious mode (-0.1)
    fixed, record = condition(bad, atoms.positions, "ts", ConditioningSettings(mode="tangent"), tangent=tangent)
    v = bad_modes[:, 2]
    assert v @ fixed @ v == pytest.approx(-0.1, abs=1e-9)
    assert bad_modes[:, 0] @ fixed @ bad_modes[:, 0] == pytest.approx(0.3, abs=1e-9)
    assert record.tangent_overlap == pytest.approx(1 / np.sqrt(1.01), abs=1e-6)


def test_exact_hessians_pass_unchanged(methanol):
    """At a minimum (xTB methanol) and at a TS (xTB HCN -> HNC), the exact Hessian is only projected."""
    atoms, exact = methanol
    proj, _ = rigid_projector(atoms.positions)
    fixed, record = condition(exact, atoms.positions, "minimum")
    assert record.n_repaired == 0 and np.abs(fixed - proj @ exact @ proj).max() < 1e-9
    ts = read(TS)
    h = XTBReference().predict(ts.numbers, ts.positions, hessian="finite-difference")["hessian"]
    proj, _ = rigid_projector(ts.positions)
    fixed, record = condition(h, ts.positions, "ts")
    assert record.n_negative_before == 1 and record.n_repaired == 0
    assert np.abs(fixed - proj @ h @ proj).max() < 1e-9


def test_runaway_eigenvalues_are_capped(methanol):
    atoms, exact = methanol
    proj, _ = rigid_projector(atoms.positions)
    _, vectors = np.linalg.eigh(proj @ exact @ proj)
    stiff = vectors[:, -1]
    wild = exact + 5000.0 * np.outer(stiff, stiff)
    fixed, record = condition(wild, atoms.positions, "minimum")
    assert record.n_capped == 1 and stiff @ fixed @ stiff == pytest.approx(ConditioningSettings().cap, rel=1e-6)


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="conditioning mode"):
        ConditioningSettings(mode="overlap")
    with pytest.raises(ValueError, match="kind must be"):
        condition(np.eye(9), np.eye(3), "saddle")


class _ModelFromXTB:
    """Stands in for a HIP checkpoint whose Hessians are the xTB ones times ``sign``: a perfect model
    (1) and one four times too stiff (4, which no spectrum repair can see), on the real xTB surface."""

    def __init__(self, sign: float) -> None:
        self.sign, self.xtb = sign, XTBReference()

    def predict(self, numbers, positions, hessian=None, forces=True):
        out = self.xtb.predict(numbers, positions, hessian="finite-difference" if hessian else None)
        if hessian:
            out["hessian"] = self.sign * out["hessian"]
        return out


@pytest.mark.parametrize(("sign", "trips"), [(1.0, False), (4.0, True)])
def test_guard_trips_only_when_the_hessian_disagrees_with_the_surface(sign, trips):
    from aiida_hip.pipeline import Evaluator, Level
    from aiida_hip.pipeline.hessian_feed import HessianFeed

    evaluator = Evaluator(Level(calculator="xtb", hessian="predicted"), model=_ModelFromXTB(sign))
    feed = HessianFeed(evaluator, "minimum")
    tripped = []
    feed.on_trip = lambda: tripped.append(len(feed.records))
    atoms = molecule("CH3OH")
    rng = np.random.default_rng(0)
    positions = atoms.positions.copy()
    for _ in range(4):  # small steps along random directions: the harmonic curvature is what the gradients see
        feed(atoms.numbers, positions)
        positions = positions + 0.02 * rng.standard_normal(positions.shape)
    assert (feed.tripped_at is not None) is trips
    assert tripped == ([2] if trips else [])
    assert feed.summary()["guard_tripped_at"] == (2 if trips else None)


@pytest.mark.parametrize(("sign", "trips"), [(1.0, False), (-1.0, True)])
def test_probe_rejects_a_first_hessian_wrong_about_the_reaction_mode(sign, trips):
    """At the HCN <-> HNC saddle: the xTB Hessian's lowest mode is the reaction mode and passes the probe;
    the negated Hessian (after conditioning: its stiffest mode made the one negative mode) is rejected
    before the optimiser uses it, at the cost of two gradients."""
    from aiida_hip.pipeline import Evaluator, Level
    from aiida_hip.pipeline.hessian_feed import HessianFeed

    ts = read(TS)
    evaluator = Evaluator(Level(calculator="xtb", hessian="predicted"), model=_ModelFromXTB(sign))
    feed = HessianFeed(evaluator, "ts")
    before = evaluator.counters.gradients
    feed(ts.numbers, ts.positions)
    first = feed.records[0]
    assert evaluator.counters.gradients - before == 3  # the point itself and the two probe gradients
    assert first["probe_predicted"] < 0
    assert (first["probe_measured"] < 0) is not trips
    assert feed.summary()["guard_tripped_at"] == (0 if trips else None) and feed.active is not trips
