"""The HIP Hessian head (seed section 3.2): a pair block and a diagonal block, composed by the head.

Node features are refined by the head's own interactions and projected to a few channels. The
:class:`PairBlock` builds features of every edge of the Hessian graph from both endpoints and their
distance vector, and the :class:`DiagonalBlock` those of every atom; both are read out as
``1x0e + 1x1e + 1x2e`` and turned into 3x3 Cartesian blocks by the Clebsch-Gordan change of basis of
``1o x 1o``. The head then symmetrises H = H' + H'^T block-wise. With ``hessian_sum_rule`` the
:class:`SumRule` replaces the diagonal readout, so that every row of blocks sums to zero exactly.

Shapes: ``N`` atoms, ``E`` message-passing edges, ``P`` Hessian pairs; ``D(irreps)`` is ``irreps.dim``.
"""

from __future__ import annotations

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import Tensor, nn

from .blocks import Interaction
from .config import HIPConfig
from .graph import scatter_sum
from .irreps import BLOCK_IRREPS, block_irreps, cartesian_change_of_basis, hidden_irreps, irreps_to_cartesian, tp_paths
from .radial import GaussianBasis


class PairBlock(nn.Module):
    """Off-diagonal blocks: features of every Hessian pair (j -> i) and their ``BLOCK_IRREPS`` readout.

    Two tensor products, weighted by an MLP of a Gaussian distance basis: the node-node product
    ``a_i x b_j`` and the node-edge product ``(a_i + b_j) x Y(r_ij)`` with ``r_ij = x_i - x_j``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_target: o3.Irreps,
        basis_range: float,
        num_basis: int,
        cutoff: float | None,
        poly_p: int,
        radial_hidden: int,
    ) -> None:
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(2)
        mid_nodes, ins_nodes = tp_paths(irreps_in, irreps_in, irreps_target, mode="uuu")
        self.tp_nodes = o3.TensorProduct(
            irreps_in, irreps_in, mid_nodes, ins_nodes, shared_weights=False, internal_weights=False
        )
        mid_edge, ins_edge = tp_paths(irreps_in, self.irreps_sh, irreps_target)
        self.tp_edge = o3.TensorProduct(
            irreps_in, self.irreps_sh, mid_edge, ins_edge, shared_weights=False, internal_weights=False
        )
        self.pair_basis = GaussianBasis(basis_range, num_basis, cutoff, poly_p)
        self.pair_radial = enn.FullyConnectedNet(
            [num_basis, radial_hidden, self.tp_nodes.weight_numel + self.tp_edge.weight_numel],
            torch.nn.functional.silu,
        )
        self.pair_mix = o3.Linear(mid_nodes.simplify(), irreps_target)
        self.pair_mix_edge = o3.Linear(mid_edge.simplify(), irreps_target)
        self.pair_out = o3.Linear(irreps_target, BLOCK_IRREPS)
        self.irreps_out = irreps_target

    def forward(self, a: Tensor, b: Tensor, positions: Tensor, pair_index: Tensor) -> tuple[Tensor, Tensor]:
        """Pair features (P, D(target)) and their raw off-diagonal readout (P, 9) for pairs ``(j, i)``."""
        src, dst = pair_index
        vec = positions[dst] - positions[src]  # (P, 3)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")  # (P, 9)
        weights = self.pair_radial(self.pair_basis(vec.norm(dim=-1)))  # (P, W_nodes + W_edge)
        w_nodes, w_edge = weights.split([self.tp_nodes.weight_numel, self.tp_edge.weight_numel], dim=-1)
        pair = self.pair_mix(self.tp_nodes(a[dst], b[src], w_nodes))  # (P, D(target))
        pair = pair + self.pair_mix_edge(self.tp_edge(a[dst] + b[src], sh, w_edge))  # (P, D(target))
        return pair, self.pair_out(pair)  # (P, D(target)), (P, 9)


class DiagonalBlock(nn.Module):
    """Diagonal blocks: an atom's own quadratic features, the sum of its pair features, its linear features.

    The pair sum is there because the acoustic sum rule ties H_ii to the off-diagonal blocks of atom i.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_pair: o3.Irreps, avg_num_neighbors: float) -> None:
        super().__init__()
        mid_self, ins_self = tp_paths(irreps_in, irreps_in, irreps_pair, mode="uuu")
        self.tp_self = o3.TensorProduct(irreps_in, irreps_in, mid_self, ins_self)
        self.diag_mix = o3.Linear(mid_self.simplify() + irreps_pair + irreps_in, BLOCK_IRREPS)
        self.avg_num_neighbors = float(avg_num_neighbors)

    def forward(self, a: Tensor, pair: Tensor, pair_dst: Tensor) -> Tensor:
        """Raw diagonal readout (N, 9) from node features ``a`` (N, D(in)) and ``pair`` features (P, D(pair))."""
        summed = scatter_sum(pair, pair_dst, a.shape[0])  # (N, D(pair))
        summed = summed / self.avg_num_neighbors
        diag_in = torch.cat([self.tp_self(a, a), summed, a], dim=-1)  # (N, D(mid) + D(pair) + D(in))
        return self.diag_mix(diag_in)  # (N, 9)


def antisymmetric_part(blocks: Tensor) -> Tensor:
    """(X - X^T) / 2 of every 3x3 block (..., 3, 3)."""
    return 0.5 * (blocks - blocks.transpose(-1, -2))


class SumRule(nn.Module):
    """Diagonal blocks from the off-diagonal ones: H_ii = -sum_j H_ij (exact translational invariance).

    H_ii must also be symmetric, so sum_j H_ij must be. The symmetric part of each pair block passes
    unchanged; the antisymmetric parts A_ij (A_ji = -A_ij, a flow on the complete graph of the molecule)
    lose their divergence, A_ij <- A_ij - (d_i - d_j) / n with d_i = sum_j A_ij, the least-squares
    nearest divergence-free flow (exact for every pair; xTB Hessians lose 0.001 eV/A^2 MAE by it).
    """

    def forward(self, offdiag: Tensor, pair_index: Tensor, atoms_per_molecule: Tensor) -> tuple[Tensor, Tensor]:
        """``offdiag`` (P, 3, 3) with H_ji = H_ij^T; ``atoms_per_molecule`` (N,) -> (offdiag, diag (N, 3, 3))."""
        src, dst = pair_index
        n_atoms = atoms_per_molecule.shape[0]
        div = scatter_sum(antisymmetric_part(offdiag), dst, n_atoms)  # (N, 3, 3)
        offdiag = offdiag - (div[dst] - div[src]) / atoms_per_molecule[dst, None, None].to(offdiag)  # (P, 3, 3)
        # The antisymmetric parts now sum to zero per row: leaving them out keeps H_ii symmetric bit for bit.
        diag = -scatter_sum(0.5 * (offdiag + offdiag.transpose(-1, -2)), dst, n_atoms)  # (N, 3, 3)
        return offdiag, diag


class HessianHead(nn.Module):
    """Node features + positions -> symmetric Hessian blocks (off-diagonal per pair, diagonal per atom)."""

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
        irreps_target = block_irreps(config.hessian_channels)
        self.proj_src = o3.Linear(irreps_node, irreps_small)
        self.proj_dst = o3.Linear(irreps_node, irreps_small)
        self.pair = PairBlock(
            irreps_small,
            irreps_target,
            config.hessian_basis_range,
            config.hessian_num_basis,
            config.hessian_cutoff,
            config.poly_p,
            config.radial_hidden,
        )
        self.sum_rule = SumRule() if config.hessian_sum_rule else None
        if self.sum_rule is None:
            self.diagonal = DiagonalBlock(irreps_small, self.pair.irreps_out, config.avg_num_neighbors)
        self.register_buffer("change_of_basis", cartesian_change_of_basis())  # (9, 3, 3)

    def to_blocks(self, x: Tensor) -> Tensor:
        """``1x0e+1x1e+1x2e`` features (..., 9) -> Cartesian 3x3 blocks (..., 3, 3)."""
        return irreps_to_cartesian(x, self.change_of_basis)

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
        atoms_per_molecule: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Symmetrised blocks: ``offdiag`` (P, 3, 3) for pairs (j -> i) is H_ij, ``diag`` (N, 3, 3).

        ``atoms_per_molecule`` (N,): the size of each atom's molecule, needed by the sum rule only.
        """
        for layer in self.layers:
            h = layer(h, species, edge_index, edge_sh, edge_basis)  # (N, D(node))
        a, b = self.proj_src(h), self.proj_dst(h)  # (N, D(small)) each
        pair, raw_off = self.pair(a, b, positions, pair_index)  # (P, D(target)), (P, 9)
        raw_off = self.to_blocks(raw_off)  # (P, 3, 3)

        # H = H' + H'^T, block-wise: H_ij = H'_ij + (H'_ji)^T.
        offdiag = raw_off + raw_off[pair_reverse].transpose(-1, -2)  # (P, 3, 3)
        if self.sum_rule is not None:
            if atoms_per_molecule is None:
                raise ValueError("the sum-rule head needs atoms_per_molecule")
            return self.sum_rule(offdiag, pair_index, atoms_per_molecule)  # (P, 3, 3), (N, 3, 3)
        raw_diag = self.to_blocks(self.diagonal(a, pair, pair_index[1]))  # (N, 3, 3)
        diag = raw_diag + raw_diag.transpose(-1, -2)  # (N, 3, 3)
        return offdiag, diag
