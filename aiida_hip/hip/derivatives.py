"""Baseline Hessians by differentiation: autograd (row loop and vmap'd) and finite differences of forces.

These are what HIP is measured against: the seed's "AD Hessian" and the classic finite-difference
route. Like MACE's ``compute_hessians_vmap(forces, positions)`` they work on tensors and functions
of positions, never on a model class; :class:`~aiida_hip.hip.model.HIPModel` supplies the functions
(``HIPModel.autograd_hessian``, ``HIPModel.finite_difference_hessian``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: positions (N, 3) -> energy (any shape; summed) in eV, differentiable in the positions.
EnergyFn = Callable[[Tensor], Tensor]
#: displaced geometries (B, N, 3) -> forces (B, N, 3) in eV/A.
ForcesFn = Callable[[Tensor], Tensor]


def hessian_from_gradient(gradient: Tensor, positions: Tensor, vectorized: bool = False) -> Tensor:
    """Jacobian (3N, 3N) of a flat ``gradient`` (3N,), built with ``create_graph=True``, wrt ``positions``.

    ``vectorized=False`` takes one Hessian-vector product per row (3N backward passes);
    ``vectorized=True`` batches them with ``torch.vmap`` (``is_grads_batched``), which uses more memory.
    """
    n = gradient.numel()
    if vectorized:
        eye = torch.eye(n, dtype=gradient.dtype, device=gradient.device)  # (3N, 3N)
        (rows,) = torch.autograd.grad(gradient, positions, grad_outputs=eye, is_grads_batched=True)  # (3N, N, 3)
        hess = rows.reshape(n, n)
    else:
        hess = torch.empty(n, n, dtype=gradient.dtype, device=gradient.device)
        for k in range(n):
            (row,) = torch.autograd.grad(gradient[k], positions, retain_graph=k < n - 1)  # (N, 3)
            hess[k] = row.reshape(-1)
    return hess.detach()


def hessian_of_energy(energy_fn: EnergyFn, positions: Tensor, vectorized: bool = False) -> Tensor:
    """d^2E/dx^2 (3N, 3N) by double backpropagation through ``energy_fn`` at ``positions`` (N, 3)."""
    with torch.enable_grad():
        pos = positions.detach().requires_grad_(True)
        energy = energy_fn(pos)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)  # (N, 3)
        return hessian_from_gradient(grad.reshape(-1), pos, vectorized=vectorized)


def check_step(step: float) -> None:
    """Finite-difference steps must be positive (Angstrom)."""
    if step <= 0:
        raise ValueError(f"finite-difference step must be positive, got {step}")


def displaced_geometries(positions: Tensor, step: float) -> Tensor:
    """The 6N central-difference geometries (6N, N, 3): ``x + h e_k`` for every k, then ``x - h e_k``."""
    n = positions.numel()
    disp = positions.reshape(1, n).repeat(2 * n, 1)  # (6N, 3N)
    k = torch.arange(n, device=positions.device)
    disp[k, k] += step
    disp[n + k, k] -= step
    return disp.reshape(2 * n, *positions.shape)


def hessian_from_forces(forces_fn: ForcesFn, positions: Tensor, step: float = 1e-3, chunk: int = 64) -> Tensor:
    """Central differences of forces: H[:, k] = -(F(x + h e_k) - F(x - h e_k)) / 2h, symmetrised.

    The 6N displaced geometries (built in the dtype of ``positions``) go to ``forces_fn`` in batches of
    ``chunk``. The result is symmetrised, as any finite-difference Hessian should be before use.
    """
    check_step(step)
    n = positions.numel()
    disp = displaced_geometries(positions, step)  # (6N, N, 3)
    forces = [forces_fn(disp[start : start + chunk]).detach().reshape(-1, n) for start in range(0, 2 * n, chunk)]
    f = torch.cat(forces)  # (6N, 3N)
    hess = -(f[:n] - f[n:]) / (2.0 * step)  # row k: derivative of the gradient wrt x_k
    return 0.5 * (hess + hess.T)


def autograd_hessian(model, numbers, positions, vectorized: bool = False) -> Tensor:
    """Same as ``model.autograd_hessian(numbers, positions, vectorized)``: kept for existing callers."""
    return model.autograd_hessian(numbers, positions, vectorized=vectorized)


def finite_difference_hessian(model, numbers, positions, step: float = 1e-3, chunk: int = 64) -> Tensor:
    """Same as ``model.finite_difference_hessian(numbers, positions, step, chunk)``: kept for existing callers."""
    return model.finite_difference_hessian(numbers, positions, step=step, chunk=chunk)
