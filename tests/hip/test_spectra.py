"""The spectral loss terms act on the eigenvalues the vibrational analysis counts, in its units."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from aiida_hip.chem import units, vibrations
from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip.campaign import CampaignConfig
from aiida_hip.hip.losses import LossWeights, spectral_losses, weighted_loss
from aiida_hip.hip.model import MolecularBatch
from aiida_hip.hip.spectra import (
    EIGENVALUE_TO_INVCM,
    IMAGINARY_THRESHOLD_INVCM,
    count_imaginary,
    internal_hessian,
    vibrational_basis,
)


@pytest.fixture(scope="module")
def samples(committed_shards):
    """Reference GFN2-xTB geometries of the committed test split: minima, TSs and path points."""
    test = load_shards(committed_shards, "test")
    by_kind: dict[str, list] = {}
    for s in test:
        by_kind.setdefault(s.kind, []).append(s)
    return [s for group in by_kind.values() for s in group[:4]]


def test_constants_agree_with_the_vibrational_analysis():
    assert pytest.approx(units.EIGENVALUE_TO_INVCM, rel=1e-6) == EIGENVALUE_TO_INVCM
    assert IMAGINARY_THRESHOLD_INVCM == vibrations.IMAGINARY_THRESHOLD


def test_imaginary_count_is_the_vibrational_analysis_count(samples):
    counts = set()
    for s in samples:
        basis, inv_sqrt_m = vibrational_basis(s.numbers, s.positions)
        vals = torch.linalg.eigvalsh(internal_hessian(torch.as_tensor(s.hessian), basis, inv_sqrt_m))
        expected = vibrations.analyse(s.numbers, s.positions, s.hessian)
        assert count_imaginary(vals) == expected.n_imaginary
        np.testing.assert_allclose(vals.numpy(), expected.eigenvalues, atol=1e-8)
        counts.add(expected.n_imaginary)
    assert {0, 1} <= counts  # the check covered minima and saddles


def test_spectral_losses_vanish_at_the_reference_and_see_a_spurious_mode(samples):
    minimum = next(s for s in samples if vibrations.analyse(s.numbers, s.positions, s.hessian).n_imaginary == 0)
    ref = torch.as_tensor(minimum.hessian)
    low, sign = spectral_losses(ref, ref, minimum.numbers, minimum.positions, k=8)
    assert float(low) == pytest.approx(0.0, abs=1e-9)
    assert float(sign) == pytest.approx(0.0, abs=1e-9)
    # Turn the softest vibration negative: one spurious imaginary mode, seen by the sign term.
    basis, inv_sqrt_m = vibrational_basis(minimum.numbers, minimum.positions)
    vals, vecs = torch.linalg.eigh(internal_hessian(ref, basis, inv_sqrt_m))
    mode = (basis @ vecs[:, 0]) / inv_sqrt_m  # Cartesian direction of that mode, scaled back from mass weighting
    spurious = (ref - (vals[0] + 0.05) * torch.outer(mode, mode) / (mode @ (mode * inv_sqrt_m**2))).clone()
    spurious.requires_grad_(True)
    low, sign = spectral_losses(spurious, ref, minimum.numbers, minimum.positions, k=8)
    assert float(sign.detach()) > 0 and float(low.detach()) > 0
    sign.backward()
    assert torch.isfinite(spurious.grad).all() and spurious.grad.abs().sum() > 0


def test_spectral_losses_are_invariant_under_rotation(samples):
    s = samples[0]
    rng = np.random.default_rng(3)
    noise = rng.normal(scale=0.3, size=s.hessian.shape)
    pred = s.hessian + 0.5 * (noise + noise.T)
    rot = Rotation.random(random_state=4).as_matrix()
    big = np.kron(np.eye(s.n_atoms), rot)  # (3N, 3N)
    before = spectral_losses(torch.as_tensor(pred), torch.as_tensor(s.hessian), s.numbers, s.positions, 8)
    after = spectral_losses(
        torch.as_tensor(big @ pred @ big.T),
        torch.as_tensor(big @ s.hessian @ big.T),
        s.numbers,
        s.positions @ rot.T,
        8,
    )
    for a, b in zip(before, after, strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_weighted_loss_adds_the_spectral_terms_only_when_weighted(samples):
    chunk = samples[:3]
    data = MolecularBatch.from_molecules([(s.numbers, s.positions) for s in chunk], torch.float64, "cpu")
    flat = torch.cat([torch.as_tensor(s.hessian).reshape(-1) for s in chunk])
    sizes = [s.n_atoms for s in chunk]
    ptr = torch.tensor(np.cumsum([0] + [9 * n * n for n in sizes]))
    pred = {"hessian_flat": flat + 0.1, "hessian_ptr": ptr}
    target = {"hessian_flat": flat}
    _, plain = weighted_loss(pred, target, sizes, LossWeights(energy=0, forces=0))
    assert "sign" not in plain
    _, terms = weighted_loss(pred, target, sizes, LossWeights(energy=0, forces=0, sign=1.0, low_subspace=1.0), data)
    assert {"sign", "low_subspace"} <= set(terms)
    with pytest.raises(ValueError, match="geometries"):
        weighted_loss(pred, target, sizes, LossWeights(sign=1.0))


def test_new_config_fields_keep_old_hashes_at_their_neutral_value():
    """States saved before the spectral terms existed resume: their stored config reads as 'without them'."""
    stored = CampaignConfig().to_dict()
    for name in ("sign_weight", "low_subspace_weight", "ef_every", "ef_data", "realistic_barrier", "realistic_repeat"):
        stored.pop(name)
    stored["model"].pop("hessian_sum_rule")  # a model field added later, at its neutral value
    old = CampaignConfig.from_dict(stored)
    assert old.sign_weight == 0.0 and old.ef_every == 0
    legacy = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
    assert old.hash() == legacy  # the hash those states were saved with
    assert CampaignConfig().sign_weight == 1.0 and CampaignConfig().hash() != legacy  # new campaigns use it
    assert CampaignConfig(low_subspace_weight=1.0, sign_weight=0.0).hash() != legacy
