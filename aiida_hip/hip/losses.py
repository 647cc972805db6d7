"""Training losses: energy/force/Hessian MAE and the eigen-subspace loss of the seed (eq. 9, A.5.1).

Hessians are in the flat per-molecule layout of :func:`aiida_hip.hip.model.hessian_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .spectra import IMAGINARY_EIGENVALUE, count_imaginary, internal_hessian, vibrational_basis


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


def low_mode_weights(k: int, dtype: torch.dtype) -> Tensor:
    """Weights (k, k) ``sqrt(w_i w_j)`` with ``w_i = 1 / (i + 1)``: mode 1 counts k times mode k."""
    w = 1.0 / torch.arange(1, k + 1, dtype=dtype)
    return torch.sqrt(w[:, None] * w[None, :])


def spectral_losses(
    pred: Tensor, target: Tensor, numbers: np.ndarray, positions: np.ndarray, k: int
) -> tuple[Tensor, Tensor]:
    """The low-mode subspace loss and the sign loss of one molecule (both eV/A^2, via the mean mass).

    Both act on the projected mass-weighted Hessian, where TS search and the imaginary-mode count look.
    *Low-mode subspace*: ``|V^T H_pred V - diag(lambda)|`` over the ``k`` lowest reference modes, weighted
    towards the lowest (:func:`low_mode_weights`). *Sign*: with ``m`` imaginary reference modes, hinge
    penalties on the ``m`` lowest predicted eigenvalues that are not below ``-2 * threshold`` and on every
    other predicted eigenvalue below zero, summed: zero exactly when the predicted count is right with
    a margin. Eigenvalue gradients are well defined even for degenerate spectra; no eigenvector of the
    prediction is differentiated.
    """
    basis, inv_sqrt_m = vibrational_basis(numbers, positions)  # (3N, 3N - d), (3N,)
    scale = float(1.0 / (inv_sqrt_m**2).mean())  # mean atomic mass (amu): back to the eV/A^2 scale
    with torch.no_grad():
        ref_vals, ref_vecs = torch.linalg.eigh(internal_hessian(target, basis, inv_sqrt_m))
    h = internal_hessian(pred, basis, inv_sqrt_m)  # (3N - d, 3N - d), eV/(A^2 amu)
    k = min(k, ref_vals.numel())
    v = ref_vecs[:, :k].to(h)  # (3N - d, k)
    weights = low_mode_weights(k, h.dtype).to(h.device)
    low = (weights * (v.T @ h @ v - torch.diag(ref_vals[:k].to(h))).abs()).sum() / weights.sum()
    m = count_imaginary(ref_vals)
    vals = torch.linalg.eigvalsh(h)  # ascending
    sign = torch.relu(vals[:m] + 2 * IMAGINARY_EIGENVALUE).sum() + torch.relu(-vals[m:]).sum()
    return scale * low, scale * sign


def batch_spectral_losses(
    pred_flat: Tensor, target_flat: Tensor, ptr: Tensor, sizes: list[int], data, k: int = 8
) -> tuple[Tensor, Tensor]:
    """:func:`spectral_losses` averaged over the molecules of a batch (``data``: its MolecularBatch)."""
    numbers = data.numbers.detach().cpu().numpy()
    positions = data.positions.detach().cpu().numpy().astype(np.float64)
    low, sign, start = [], [], 0
    for g, n in enumerate(sizes):
        pred = pred_flat[ptr[g] : ptr[g + 1]].view(3 * n, 3 * n)
        target = target_flat[ptr[g] : ptr[g + 1]].view(3 * n, 3 * n)
        a, b = spectral_losses(pred, target, numbers[start : start + n], positions[start : start + n], k)
        low.append(a)
        sign.append(b)
        start += n
    return torch.stack(low).mean(), torch.stack(sign).mean()


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; ``low_subspace`` and ``sign`` (:func:`spectral_losses`) are off by default."""

    energy: float = 1.0
    forces: float = 10.0
    hessian: float = 1.0
    subspace: float = 1.0
    k: int = 8
    low_subspace: float = 0.0
    sign: float = 0.0


def weighted_loss(pred: dict, target: dict, sizes: list[int], weights: LossWeights, data=None) -> tuple[Tensor, dict]:
    """Weighted sum of the terms present in both dicts; returns the total and each term (detached).

    ``data`` (the batch's MolecularBatch) is needed only by the spectral terms (``low_subspace``, ``sign``).
    """
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
    if (weights.low_subspace or weights.sign) and "hessian_flat" in target:
        if data is None:
            raise ValueError("the low_subspace and sign terms need the batch's geometries (data=)")
        terms["low_subspace"], terms["sign"] = batch_spectral_losses(
            pred["hessian_flat"], target["hessian_flat"], pred["hessian_ptr"], sizes, data, weights.k
        )
    if not terms:
        raise ValueError("no loss term: the target has none of energy, forces, hessian_flat")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
