"""Message-passing blocks shared by the backbone and the Hessian head (MACE's ``blocks``).

Shapes: ``N`` atoms, ``E`` edges; ``D(irreps)`` is ``irreps.dim``.
"""

from __future__ import annotations

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import Tensor, nn

from .graph import scatter_sum
from .irreps import gate_irreps, tp_paths
from .radial import BesselBasis


class EdgeEmbedding(nn.Module):
    """Spherical harmonics of edge directions and a radial basis of edge lengths."""

    def __init__(self, lmax: int, cutoff: float, num_basis: int, p: int) -> None:
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.basis = BesselBasis(cutoff, num_basis, p)

    def forward(self, positions: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        vec = positions[edge_index[1]] - positions[edge_index[0]]  # (E, 3)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")  # (E, D(sh))
        return sh, self.basis(vec.norm(dim=-1))  # (E, D(sh)), (E, num_basis)


class Interaction(nn.Module):
    """One equivariant message-passing layer with a residual, species-dependent self-connection.

    A linear mixing, a tensor product of neighbour features with the edge spherical harmonics
    weighted by an MLP of the radial basis, a normalised sum over neighbours, a gated nonlinearity.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        num_elements: int,
        avg_num_neighbors: float,
    ) -> None:
        super().__init__()
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.linear_up = o3.Linear(irreps_in, irreps_in)
        irreps_mid, instructions = tp_paths(irreps_in, irreps_sh, irreps_out)
        self.tp = o3.TensorProduct(
            irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial = enn.FullyConnectedNet(
            [num_basis, radial_hidden, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )
        scalars, gates, gated = gate_irreps(irreps_out)
        self.gate = enn.Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.linear_down = o3.Linear(irreps_mid.simplify(), self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(irreps_in, o3.Irreps(f"{num_elements}x0e"), irreps_out)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h: Tensor, species: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_basis: Tensor) -> Tensor:
        src, dst = edge_index
        x = self.linear_up(h)  # (N, D(in))
        messages = self.tp(x[src], edge_sh, self.radial(edge_basis))  # (E, D(mid))
        agg = scatter_sum(messages, dst, h.shape[0])  # (N, D(mid))
        agg = agg / self.avg_num_neighbors**0.5
        return self.gate(self.linear_down(agg)) + self.self_connection(h, species)  # (N, D(out))
