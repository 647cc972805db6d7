"""Training losses: energy/force/Hessian MAE and the eigen-subspace loss of the seed (eq. 9, A.5.1).

Hessians are in the flat per-molecule layout of :func:`aiida_hip.hip.model.hessian_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def mae(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean()


def hessian_mae(pred_flat: Tensor, target_flat: Tensor) -> Tensor:
    """Mean absolute error over all Hessian elements of all molecules (eV/A^2)."""
    return mae(pred_flat, target_flat)


def lowest_eigenpairs(hessian: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` lowest eigenvalues (k,) and eigenvectors (3N, k) of a symmetric matrix."""
    vals, vecs = torch.linalg.eigh(hessian)
    k = min(k, vals.numel())
    return vals[:k], vecs[:, :k]


def subspace_loss(pred: Tensor, eigvals: Tensor, eigvecs: Tensor) -> Tensor:
    """Mean |V_k^T H_pred V_k - diag(lambda_k)| over the k x k entries.

    ``eigvals``/``eigvecs`` are the k lowest eigenpairs of the *reference* Hessian, so no gradient
    flows through an eigendecomposition (which is unstable for near-degenerate spectra).
    """
    projected = eigvecs.T @ pred @ eigvecs
    return (projected - torch.diag(eigvals)).abs().mean()


def batch_subspace_loss(pred_flat: Tensor, target_flat: Tensor, ptr: Tensor, sizes: list[int], k: int = 8) -> Tensor:
    """Subspace loss averaged over the molecules of a batch (reference eigenpairs computed here)."""
    losses = []
    for g, n in enumerate(sizes):
        pred = pred_flat[ptr[g] : ptr[g + 1]].view(3 * n, 3 * n)
        target = target_flat[ptr[g] : ptr[g + 1]].view(3 * n, 3 * n)
        with torch.no_grad():
            vals, vecs = lowest_eigenpairs(target, k)
        losses.append(subspace_loss(pred, vals, vecs))
    return torch.stack(losses).mean()


@dataclass(frozen=True)
class LossWeights:
    energy: float = 1.0
    forces: float = 10.0
    hessian: float = 1.0
    subspace: float = 1.0
    k: int = 8


def weighted_loss(pred: dict, target: dict, sizes: list[int], weights: LossWeights) -> tuple[Tensor, dict]:
    """Weighted sum of the terms present in both dicts; returns the total and each term (detached)."""
    terms: dict[str, Tensor] = {}
    if weights.energy and "energy" in target:
        terms["energy"] = mae(
            pred["energy"] / torch.as_tensor(sizes, dtype=pred["energy"].dtype, device=pred["energy"].device),
            target["energy"] / torch.as_tensor(sizes, dtype=target["energy"].dtype, device=target["energy"].device),
        )
    if weights.forces and "forces" in target:
        terms["forces"] = mae(pred["forces"], target["forces"])
    if weights.hessian and "hessian_flat" in target:
        terms["hessian"] = hessian_mae(pred["hessian_flat"], target["hessian_flat"])
    if weights.subspace and "hessian_flat" in target:
        terms["subspace"] = batch_subspace_loss(
            pred["hessian_flat"], target["hessian_flat"], pred["hessian_ptr"], sizes, weights.k
        )
    if not terms:
        raise ValueError("no loss term: the target has none of energy, forces, hessian_flat")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
