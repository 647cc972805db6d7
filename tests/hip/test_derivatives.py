"""Autograd and finite-difference Hessians: exact on an analytic energy, and in agreement on the model (float64)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from aiida_hip.hip import derivatives
from aiida_hip.hip.derivatives import (
    displaced_geometries,
    hessian_from_forces,
    hessian_from_gradient,
    hessian_of_energy,
)

# E(x) = 1/2 x^T A x + sum_i x_i^4 / 4 over flat coordinates: H = A + diag(3 x^2).
_A = torch.tensor(np.random.default_rng(0).normal(size=(6, 6)), dtype=torch.float64)
_A = _A + _A.T


def _energy(pos: torch.Tensor) -> torch.Tensor:
    x = pos.reshape(-1)
    return 0.5 * x @ _A @ x + (x**4).sum() / 4


def _exact(pos: torch.Tensor) -> torch.Tensor:
    return _A + torch.diag(3 * pos.reshape(-1) ** 2)


def _forces(geoms: torch.Tensor) -> torch.Tensor:  # (B, 2, 3) -> (B, 2, 3)
    x = geoms.reshape(len(geoms), -1)
    return -(x @ _A + x**3).reshape(geoms.shape)


POS = torch.tensor([[0.1, -0.3, 0.7], [1.2, 0.4, -0.5]], dtype=torch.float64)


@pytest.mark.parametrize("vectorized", [False, True])
def test_hessian_of_energy_is_exact_on_analytic_energy(vectorized):
    hess = hessian_of_energy(_energy, POS, vectorized=vectorized)
    assert hess.shape == (6, 6) and not hess.requires_grad
    torch.testing.assert_close(hess, _exact(POS), atol=1e-12, rtol=0)


def test_hessian_from_gradient_takes_a_gradient_with_graph():
    pos = POS.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_energy(pos), pos, create_graph=True)
    torch.testing.assert_close(hessian_from_gradient(grad.reshape(-1), pos), _exact(POS), atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_hessian_from_forces_matches_analytic(chunk):
    hess = hessian_from_forces(_forces, POS, step=1e-4, chunk=chunk)
    torch.testing.assert_close(hess, _exact(POS), atol=1e-7, rtol=0)
    torch.testing.assert_close(hess, hess.T, atol=0, rtol=0)


def test_displaced_geometries_layout():
    disp = displaced_geometries(POS, 0.01)
    assert disp.shape == (12, 2, 3)
    delta = (disp - POS).reshape(12, 6)
    torch.testing.assert_close(delta, torch.cat([torch.eye(6), -torch.eye(6)]).double() * 0.01, atol=1e-15, rtol=0)


def test_autograd_matches_finite_difference(model64, ethanol):
    numbers, pos = ethanol
    ad = model64.autograd_hessian(numbers, pos).numpy()
    fd = model64.finite_difference_hessian(numbers, pos, step=1e-4).numpy()
    scale = np.abs(ad).max()
    assert scale > 1e-3
    np.testing.assert_allclose(fd, ad, atol=1e-6 * scale)
    np.testing.assert_allclose(ad, ad.T, atol=1e-10 * scale)


def test_vectorized_autograd_matches_loop(model64, ethanol):
    loop = model64.autograd_hessian(*ethanol).numpy()
    vmapped = model64.autograd_hessian(*ethanol, vectorized=True).numpy()
    np.testing.assert_allclose(vmapped, loop, atol=1e-12)


def test_module_level_functions_equal_model_methods(model64, ethanol):
    """``derivatives.autograd_hessian(model, ...)`` is what benchmarks/hessian_speed.py calls."""
    ad = derivatives.autograd_hessian(model64, *ethanol, vectorized=True)
    assert torch.equal(ad, model64.autograd_hessian(*ethanol, vectorized=True))
    fd = derivatives.finite_difference_hessian(model64, *ethanol, step=1e-3, chunk=7)
    assert torch.equal(fd, model64.finite_difference_hessian(*ethanol, step=1e-3, chunk=7))


def test_predict_modes_agree(model64, ethanol):
    ad = model64.predict(*ethanol, hessian="autograd")["hessian"]
    fd = model64.predict(*ethanol, hessian="finite-difference", fd_step=1e-4)["hessian"]
    np.testing.assert_allclose(fd, ad, atol=1e-6 * np.abs(ad).max())


def test_fd_step_must_be_positive(model64, ethanol):
    with pytest.raises(ValueError, match="positive"):
        model64.finite_difference_hessian(*ethanol, step=0.0)
    with pytest.raises(ValueError, match="positive"):
        derivatives.finite_difference_hessian(model64, *ethanol, step=-1e-3)
    with pytest.raises(ValueError, match="positive"):
        hessian_from_forces(_forces, POS, step=0.0)


def test_derivatives_does_not_import_the_model():
    tree = ast.parse(Path(derivatives.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and "model" in m for m in imported), imported
