"""Autograd and finite-difference Hessians of the same model agree (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_hip.hip.derivatives import autograd_hessian, finite_difference_hessian


def test_autograd_matches_finite_difference(model64, ethanol):
    numbers, pos = ethanol
    ad = autograd_hessian(model64, numbers, pos).numpy()
    fd = finite_difference_hessian(model64, numbers, pos, step=1e-4).numpy()
    scale = np.abs(ad).max()
    assert scale > 1e-3
    np.testing.assert_allclose(fd, ad, atol=1e-6 * scale)
    np.testing.assert_allclose(ad, ad.T, atol=1e-10 * scale)


def test_vectorized_autograd_matches_loop(model64, ethanol):
    loop = autograd_hessian(model64, *ethanol).numpy()
    vmapped = autograd_hessian(model64, *ethanol, vectorized=True).numpy()
    np.testing.assert_allclose(vmapped, loop, atol=1e-12)


def test_predict_modes_agree(model64, ethanol):
    ad = model64.predict(*ethanol, hessian="autograd")["hessian"]
    fd = model64.predict(*ethanol, hessian="finite-difference", fd_step=1e-4)["hessian"]
    np.testing.assert_allclose(fd, ad, atol=1e-6 * np.abs(ad).max())


def test_fd_step_must_be_positive(model64, ethanol):
    with pytest.raises(ValueError, match="positive"):
        finite_difference_hessian(model64, *ethanol, step=0.0)
