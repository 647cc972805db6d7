"""Equivariance and symmetry of the HIP model: the physics every Hessian must obey."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from aiida_hip.hip import HIPConfig, build_model

TOL = 1e-10


def rotation(rng) -> np.ndarray:
    return Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()


def test_rotation_translation_equivariance(model64, ethanol, rng):
    numbers, pos = ethanol
    R, t = rotation(rng), rng.normal(size=3) * 3.0
    a = model64.predict(numbers, pos)
    b = model64.predict(numbers, pos @ R.T + t)
    assert abs(a["energy"] - b["energy"]) < TOL
    np.testing.assert_allclose(b["forces"], a["forces"] @ R.T, atol=TOL)
    n = len(numbers)
    Ha = a["hessian"].reshape(n, 3, n, 3)
    Hb = b["hessian"].reshape(n, 3, n, 3)
    # Every 3x3 block transforms as R H_ij R^T.
    expected = np.einsum("ab,ibjc,dc->iajd", R, Ha, R)
    np.testing.assert_allclose(Hb, expected, atol=TOL)
    assert np.abs(Ha).max() > 1e-3  # the check is not vacuous


def test_inversion_leaves_hessian_unchanged(model64, ethanol):
    numbers, pos = ethanol
    a, b = model64.predict(numbers, pos), model64.predict(numbers, -pos)
    np.testing.assert_allclose(b["hessian"], a["hessian"], atol=TOL)
    np.testing.assert_allclose(b["forces"], -a["forces"], atol=TOL)


def test_permutation_permutes_hessian(model64, ethanol, rng):
    numbers, pos = ethanol
    perm = rng.permutation(len(numbers))
    a = model64.predict(numbers, pos)
    b = model64.predict(numbers[perm], pos[perm])
    idx = (3 * perm[:, None] + np.arange(3)).reshape(-1)
    assert abs(a["energy"] - b["energy"]) < TOL
    np.testing.assert_allclose(b["forces"], a["forces"][perm], atol=TOL)
    np.testing.assert_allclose(b["hessian"], a["hessian"][np.ix_(idx, idx)], atol=TOL)


def test_hessian_exactly_symmetric(model64, glycine_like):
    H = model64.predict(*glycine_like)["hessian"]
    assert H.shape == (3 * len(glycine_like[0]),) * 2
    assert np.array_equal(H, H.T)


def test_needs_l2_for_hessian_blocks():
    with pytest.raises(ValueError, match="l = 2"):
        HIPConfig(lmax=1)


def test_hessian_cutoff_sparsity_and_equivariance(ethanol, rng):
    torch.manual_seed(0)
    cfg = HIPConfig(channels=8, num_layers=1, hessian_channels=4, radial_hidden=16, hessian_cutoff=2.0)
    model = build_model(cfg, dtype=torch.float64).eval()
    numbers, pos = ethanol
    H = model.predict(numbers, pos)["hessian"]
    n = len(numbers)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    far = np.kron(dist >= 2.0, np.ones((3, 3), dtype=bool))
    assert np.all(H[far] == 0.0)
    assert np.abs(H[~far]).max() > 0
    R = rotation(rng)
    H2 = model.predict(numbers, pos @ R.T)["hessian"].reshape(n, 3, n, 3)
    expected = np.einsum("ab,ibjc,dc->iajd", R, H.reshape(n, 3, n, 3), R)
    np.testing.assert_allclose(H2, expected, atol=TOL)
