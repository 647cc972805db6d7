"""The HIP Hessian head (seed section 3.2).

Pair features of every edge of the Hessian graph and node features of every atom are projected to
``1x0e + 1x1e + 1x2e`` and turned into 3x3 Cartesian blocks by the Clebsch-Gordan change of basis
of ``1o x 1o``. Off-diagonal blocks come from pair features built from both endpoints, diagonal
blocks from node features; the head then symmetrises H = H' + H'^T block-wise.
"""

from __future__ import annotations

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.utils import scatter

from .backbone import Interaction, hidden_irreps, tp_paths
from .config import HIPConfig
from .radial import GaussianBasis

BLOCK_IRREPS = o3.Irreps("1x0e + 1x1e + 1x2e")


class HessianHead(nn.Module):
    """Node features + positions -> symmetric Hessian blocks (off-diagonal per edge, diagonal per atom)."""

    def __init__(self, config: HIPConfig, irreps_node: o3.Irreps, irreps_sh: o3.Irreps) -> None:
        super().__init__()
        n_el = len(config.elements)
        self.layers = nn.ModuleList(
            Interaction(
                irreps_node,
                irreps_node,
                irreps_sh,
                config.num_bessel,
                config.radial_hidden,
                n_el,
                config.avg_num_neighbors,
            )
            for _ in range(config.hessian_layers)
        )
        # Project to few channels before any pair product: the pair count grows as N^2.
        irreps_small = hidden_irreps(config.hessian_channels, 2)
        irreps_target = o3.Irreps(
            f"{config.hessian_channels}x0e + {config.hessian_channels}x1e + {config.hessian_channels}x2e"
        )
        self.proj_src = o3.Linear(irreps_node, irreps_small)
        self.proj_dst = o3.Linear(irreps_node, irreps_small)
        self.irreps_sh = o3.Irreps.spherical_harmonics(2)

        mid_nodes, ins_nodes = tp_paths(irreps_small, irreps_small, irreps_target, mode="uuu")
        self.tp_nodes = o3.TensorProduct(
            irreps_small, irreps_small, mid_nodes, ins_nodes, shared_weights=False, internal_weights=False
        )
        mid_edge, ins_edge = tp_paths(irreps_small, self.irreps_sh, irreps_target)
        self.tp_edge = o3.TensorProduct(
            irreps_small, self.irreps_sh, mid_edge, ins_edge, shared_weights=False, internal_weights=False
        )
        self.pair_basis = GaussianBasis(
            config.hessian_basis_range, config.hessian_num_basis, config.hessian_cutoff, config.poly_p
        )
        self.pair_radial = enn.FullyConnectedNet(
            [config.hessian_num_basis, config.radial_hidden, self.tp_nodes.weight_numel + self.tp_edge.weight_numel],
            torch.nn.functional.silu,
        )
        self.pair_mix = o3.Linear(mid_nodes.simplify(), irreps_target)
        self.pair_mix_edge = o3.Linear(mid_edge.simplify(), irreps_target)
        self.pair_out = o3.Linear(irreps_target, BLOCK_IRREPS)

        # Diagonal blocks: the node's own quadratic features plus the sum of its pair features
        # (the acoustic sum rule ties H_ii to the off-diagonal blocks of atom i).
        mid_self, ins_self = tp_paths(irreps_small, irreps_small, irreps_target, mode="uuu")
        self.tp_self = o3.TensorProduct(irreps_small, irreps_small, mid_self, ins_self)
        self.diag_mix = o3.Linear(mid_self.simplify() + irreps_target + irreps_small, BLOCK_IRREPS)
        self.avg_num_neighbors = float(config.avg_num_neighbors)
        rtp = o3.ReducedTensorProducts("ij", i="1o", j="1o")
        if rtp.irreps_out != BLOCK_IRREPS:
            raise RuntimeError(f"unexpected change-of-basis irreps {rtp.irreps_out}")
        self.register_buffer("change_of_basis", rtp.change_of_basis.clone())  # (9, 3, 3)

    def to_blocks(self, x: Tensor) -> Tensor:
        """``1x0e+1x1e+1x2e`` features (..., 9) -> Cartesian 3x3 blocks (..., 3, 3)."""
        return torch.einsum("...k,kab->...ab", x, self.change_of_basis.to(x.dtype))

    def forward(
        self,
        h: Tensor,
        species: Tensor,
        positions: Tensor,
        edge_index: Tensor,
        edge_sh: Tensor,
        edge_basis: Tensor,
        pair_index: Tensor,
        pair_reverse: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Symmetrised blocks: ``offdiag`` (P, 3, 3) for pairs (j -> i) is H_ij, ``diag`` (N, 3, 3)."""
        for layer in self.layers:
            h = layer(h, species, edge_index, edge_sh, edge_basis)
        a, b = self.proj_src(h), self.proj_dst(h)
        src, dst = pair_index
        vec = positions[dst] - positions[src]
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        weights = self.pair_radial(self.pair_basis(vec.norm(dim=-1)))
        w_nodes, w_edge = weights.split([self.tp_nodes.weight_numel, self.tp_edge.weight_numel], dim=-1)
        pair = self.pair_mix(self.tp_nodes(a[dst], b[src], w_nodes))
        pair = pair + self.pair_mix_edge(self.tp_edge(a[dst] + b[src], sh, w_edge))
        raw_off = self.to_blocks(self.pair_out(pair))

        summed = scatter(pair, dst, dim=0, dim_size=h.shape[0], reduce="sum") / self.avg_num_neighbors
        diag_in = torch.cat([self.tp_self(a, a), summed, a], dim=-1)
        raw_diag = self.to_blocks(self.diag_mix(diag_in))

        # H = H' + H'^T, block-wise: H_ij = H'_ij + (H'_ji)^T.
        offdiag = raw_off + raw_off[pair_reverse].transpose(-1, -2)
        diag = raw_diag + raw_diag.transpose(-1, -2)
        return offdiag, diag
