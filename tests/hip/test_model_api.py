"""The numpy API later layers call: shapes, units, batching, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiida_hip.hip import CheckpointError, HIPModel, load_model, save_checkpoint, sha256
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT


def test_predict_shapes_and_modes(model64, ethanol):
    numbers, pos = ethanol
    n = len(numbers)
    out = model64.predict(numbers, pos)
    assert isinstance(out["energy"], float)
    assert out["forces"].shape == (n, 3) and out["forces"].dtype == np.float64
    assert out["hessian"].shape == (3 * n, 3 * n)
    assert model64.predict(numbers, pos, hessian=None)["hessian"] is None
    with pytest.raises(ValueError, match="hessian must be one of"):
        model64.predict(numbers, pos, hessian="analytic")


def test_hessian_without_forces_is_the_same_hessian(model64, ethanol):
    """``forces=False`` (the two-level search's HIP calls) skips the backward pass, not the Hessian."""
    numbers, pos = ethanol
    full = model64.predict(numbers, pos)
    lean = model64.predict(numbers, pos, forces=False)
    assert lean["forces"] is None
    assert lean["energy"] == pytest.approx(full["energy"], abs=1e-10)
    np.testing.assert_allclose(lean["hessian"], full["hessian"], atol=1e-12)
    autograd = model64.predict(numbers, pos, hessian="autograd", forces=False)["hessian"]
    np.testing.assert_allclose(autograd, model64.predict(numbers, pos, hessian="autograd")["hessian"], atol=1e-10)


def test_forces_are_minus_energy_gradient(model64, ethanol):
    numbers, pos = ethanol
    out = model64.predict(numbers, pos, hessian=None)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 2), (8, 1)]:
        plus, minus = pos.copy(), pos.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        e_plus = model64.predict(numbers, plus, hessian=None)["energy"]
        de = e_plus - model64.predict(numbers, minus, hessian=None)["energy"]
        assert out["forces"][atom, axis] == pytest.approx(-de / (2 * h), rel=1e-6, abs=1e-9)


def test_batched_equals_single(model64, ethanol, glycine_like, rng):
    water = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47]]))
    mols = [ethanol, water, glycine_like, (ethanol[0], ethanol[1] + rng.normal(scale=0.05, size=ethanol[1].shape))]
    batched = model64.predict_batch(mols)
    for mol, res in zip(mols, batched, strict=True):
        single = model64.predict(*mol)
        assert res["energy"] == pytest.approx(single["energy"], abs=1e-10)
        np.testing.assert_allclose(res["forces"], single["forces"], atol=1e-10)
        np.testing.assert_allclose(res["hessian"], single["hessian"], atol=1e-10)


def test_no_default_checkpoint_gives_clear_error():
    if DEFAULT_CHECKPOINT.is_file():
        pytest.skip("a default checkpoint ships with this version")
    with pytest.raises(CheckpointError, match="shipped HIP checkpoint is missing"):
        load_model()


def test_checkpoint_roundtrip(model64, ethanol, tmp_path):
    model64.atomic_energies.fill_(-1.5)
    try:
        path = save_checkpoint(model64, tmp_path / "m.pt", {"note": "test"})
        loaded = load_model(path)
    finally:
        model64.atomic_energies.zero_()
    assert loaded.checkpoint_metadata == {"note": "test"}
    assert len(sha256(path)) == 64
    loaded = loaded.double()
    a = loaded.predict(*ethanol)
    model64.atomic_energies.fill_(-1.5)
    try:
        b = model64.predict(*ethanol)
    finally:
        model64.atomic_energies.zero_()
    assert a["energy"] == pytest.approx(b["energy"], abs=1e-5)
    np.testing.assert_allclose(a["hessian"], b["hessian"], atol=1e-5)


def test_rejects_non_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="not an aiida-hip checkpoint"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_default_size_is_workstation_trainable():
    n = HIPModel().num_parameters()
    assert 3e5 <= n <= 1e6, n
