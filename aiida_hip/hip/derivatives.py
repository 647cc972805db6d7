"""Baseline Hessians of the same model: autograd (row loop and vmap'd) and finite differences of forces.

These are what HIP is measured against: the seed's "AD Hessian" and the classic finite-difference route.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .model import HIPModel, MolecularBatch


def _single(model: HIPModel, numbers, positions) -> MolecularBatch:
    z, pos = model._molecule(numbers, positions)
    return MolecularBatch.from_molecules([(z, pos)], model.dtype, model.device)


def _gradient(model: HIPModel, data: MolecularBatch) -> tuple[Tensor, Tensor]:
    pos = data.positions.detach().requires_grad_(True)
    energy, _, _ = model.energy(data, pos)
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
    return pos, grad.reshape(-1)


def autograd_hessian(model: HIPModel, numbers, positions, vectorized: bool = False) -> Tensor:
    """d^2E/dx^2 (3N, 3N) in eV/A^2 by double backpropagation.

    ``vectorized=False`` takes one Hessian-vector product per row (3N backward passes);
    ``vectorized=True`` batches them with ``torch.vmap`` (``is_grads_batched``), which uses more memory.
    """
    data = _single(model, numbers, positions)
    with torch.enable_grad():
        pos, grad = _gradient(model, data)
        n = grad.numel()
        if vectorized:
            eye = torch.eye(n, dtype=grad.dtype, device=grad.device)
            (rows,) = torch.autograd.grad(grad, pos, grad_outputs=eye, is_grads_batched=True)
            hess = rows.reshape(n, n)
        else:
            hess = torch.empty(n, n, dtype=grad.dtype, device=grad.device)
            for k in range(n):
                (row,) = torch.autograd.grad(grad[k], pos, retain_graph=k < n - 1)
                hess[k] = row.reshape(-1)
    return hess.detach()


def finite_difference_hessian(model: HIPModel, numbers, positions, step: float = 1e-3, chunk: int = 64) -> Tensor:
    """Central differences of the model forces: H[:, k] = -(F(x + h e_k) - F(x - h e_k)) / 2h.

    All 6N displaced geometries are evaluated as batches of ``chunk`` molecules. The result is
    symmetrised, as any finite-difference Hessian should be before use.
    """
    if step <= 0:
        raise ValueError(f"finite-difference step must be positive, got {step}")
    z, pos = model._molecule(numbers, positions)
    n = 3 * len(z)
    disp = np.repeat(pos[None], 2 * n, axis=0).reshape(2 * n, -1)
    disp[np.arange(n), np.arange(n)] += step
    disp[n + np.arange(n), np.arange(n)] -= step
    forces = []
    for start in range(0, 2 * n, chunk):
        geoms = [(z, d.reshape(-1, 3)) for d in disp[start : start + chunk]]
        data = MolecularBatch.from_molecules(geoms, model.dtype, model.device)
        out = model(data, compute_forces=True, compute_hessian=False)
        forces.append(out["forces"].detach().reshape(len(geoms), n))
    f = torch.cat(forces)
    hess = -(f[:n] - f[n:]) / (2.0 * step)  # row k: derivative of the gradient wrt x_k
    return 0.5 * (hess + hess.T)
