"""Losses: zero at the target, positive away from it, differentiable through the prediction only."""

from __future__ import annotations

import torch

from aiida_hip.hip.losses import LossWeights, batch_subspace_loss, lowest_eigenpairs, subspace_loss, weighted_loss


def _sym(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a + a.T


def test_subspace_loss_zero_at_target_and_positive_elsewhere():
    H = _sym(12, 0)
    vals, vecs = lowest_eigenpairs(H, 8)
    assert float(subspace_loss(H, vals, vecs)) < 1e-12
    assert float(subspace_loss(H + 0.1 * _sym(12, 1), vals, vecs)) > 1e-3


def test_subspace_loss_only_sees_the_low_subspace():
    H = _sym(12, 2)
    _, vecs = torch.linalg.eigh(H)
    high = vecs[:, -1:] @ vecs[:, -1:].T  # perturb the highest mode only
    lv, lvec = lowest_eigenpairs(H, 8)
    assert float(subspace_loss(H + 5.0 * high, lv, lvec)) < 1e-10


def test_weighted_loss_batches_and_backpropagates():
    sizes = [2, 3]
    target = torch.cat([_sym(6, 3).reshape(-1), _sym(9, 4).reshape(-1)])
    ptr = torch.tensor([0, 36, 117])
    pred = (target + 0.01 * torch.randn_like(target)).requires_grad_(True)
    total, terms = weighted_loss(
        {"hessian_flat": pred, "hessian_ptr": ptr}, {"hessian_flat": target}, sizes, LossWeights()
    )
    assert set(terms) == {"hessian", "subspace"}
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(batch_subspace_loss(target, target, ptr, sizes)) < 1e-12
