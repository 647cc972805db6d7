"""Radial bases: Bessel functions with a polynomial cutoff (message passing) and Gaussians (Hessian pairs)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PolynomialCutoff(nn.Module):
    """Smooth envelope that goes to zero with ``p`` continuous derivatives at the cutoff (DimeNet)."""

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: Tensor) -> Tensor:
        p, x = self.p, r / self.cutoff
        env = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x**p
            + p * (p + 2.0) * x ** (p + 1.0)
            - p * (p + 1.0) / 2.0 * x ** (p + 2.0)
        )
        return env * (x < 1.0)


class BesselBasis(nn.Module):
    """``sqrt(2/rc) sin(n pi r / rc) / r`` for n = 1..num_basis, times the polynomial envelope."""

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("freqs", torch.arange(1, num_basis + 1) * math.pi / self.cutoff)
        self.envelope = PolynomialCutoff(cutoff, p)

    def forward(self, r: Tensor) -> Tensor:
        r = r.unsqueeze(-1)
        basis = math.sqrt(2.0 / self.cutoff) * torch.sin(self.freqs * r) / r
        return basis * self.envelope(r)


class GaussianBasis(nn.Module):
    """Gaussians on [0, range]; with a cutoff they are multiplied by the polynomial envelope.

    Hessian pairs span the whole molecule, so the basis covers long distances rather than vanishing
    at the message-passing cutoff.
    """

    def __init__(self, basis_range: float, num_basis: int, cutoff: float | None = None, p: int = 6) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, basis_range, num_basis))
        self.width = basis_range / (num_basis - 1)
        self.envelope = PolynomialCutoff(cutoff, p) if cutoff is not None else None

    def forward(self, r: Tensor) -> Tensor:
        basis = torch.exp(-0.5 * ((r.unsqueeze(-1) - self.centers) / self.width) ** 2)
        if self.envelope is not None:
            basis = basis * self.envelope(r).unsqueeze(-1)
        return basis
