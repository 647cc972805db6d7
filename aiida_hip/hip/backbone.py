"""E(3)-equivariant message passing in the NequIP/MACE style, built on e3nn.

Node features carry ``C x (0e + 1o + ... + lmax)`` irreps. Each interaction: a linear mixing, a
tensor product of neighbour features with the edge spherical harmonics weighted by an MLP of the
Bessel basis, a sum over neighbours, a gated nonlinearity, and an element-dependent self-connection.
"""

from __future__ import annotations

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.utils import scatter

from .config import HIPConfig
from .radial import BesselBasis


def hidden_irreps(channels: int, lmax: int) -> o3.Irreps:
    """``C x 0e + C x 1o + C x 2e + ...``: the natural parities of spherical harmonics."""
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


def tp_paths(irreps_a: o3.Irreps, irreps_b: o3.Irreps, irreps_out: o3.Irreps, mode: str = "uvu"):
    """Tensor-product paths ``a x b`` whose outputs appear in ``irreps_out``, keeping a's multiplicity.

    ``uvu``: every channel of ``a`` with every channel of ``b`` (b has multiplicity 1 here);
    ``uuu``: channel-wise products of two inputs of equal multiplicities.
    """
    wanted = {ir for _, ir in irreps_out}
    mid, instructions = [], []
    for i, (mul, ir_a) in enumerate(irreps_a):
        for j, (_, ir_b) in enumerate(irreps_b):
            for ir_out in ir_a * ir_b:
                if ir_out in wanted:
                    instructions.append((i, j, len(mid), mode, True))
                    mid.append((mul, ir_out))
    return o3.Irreps(mid), instructions


class Interaction(nn.Module):
    """One equivariant message-passing layer with a residual, species-dependent self-connection."""

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
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps([(gated.num_irreps, "0e")])
        self.gate = enn.Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.linear_down = o3.Linear(irreps_mid.simplify(), self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(irreps_in, o3.Irreps(f"{num_elements}x0e"), irreps_out)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h: Tensor, species: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_basis: Tensor) -> Tensor:
        src, dst = edge_index
        x = self.linear_up(h)
        messages = self.tp(x[src], edge_sh, self.radial(edge_basis))
        agg = scatter(messages, dst, dim=0, dim_size=h.shape[0], reduce="sum") / self.avg_num_neighbors**0.5
        return self.gate(self.linear_down(agg)) + self.self_connection(h, species)


class EdgeEmbedding(nn.Module):
    """Spherical harmonics of edge directions and a radial basis of edge lengths."""

    def __init__(self, lmax: int, cutoff: float, num_basis: int, p: int) -> None:
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.basis = BesselBasis(cutoff, num_basis, p)

    def forward(self, positions: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        vec = positions[edge_index[1]] - positions[edge_index[0]]
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        return sh, self.basis(vec.norm(dim=-1))


class Backbone(nn.Module):
    """Element embedding + ``num_layers`` interactions; returns node features and per-atom energies."""

    def __init__(self, config: HIPConfig) -> None:
        super().__init__()
        n_el = len(config.elements)
        self.irreps_hidden = hidden_irreps(config.channels, config.lmax)
        self.embedding = o3.Linear(o3.Irreps(f"{n_el}x0e"), o3.Irreps(f"{config.channels}x0e"))
        self.edges = EdgeEmbedding(config.lmax, config.cutoff, config.num_bessel, config.poly_p)
        layers, irreps = [], o3.Irreps(f"{config.channels}x0e")
        for _ in range(config.num_layers):
            layer = Interaction(
                irreps,
                self.irreps_hidden,
                self.edges.irreps_sh,
                config.num_bessel,
                config.radial_hidden,
                n_el,
                config.avg_num_neighbors,
            )
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        # MACE-style: a linear scalar readout after every layer, an MLP readout after the last.
        self.readouts = nn.ModuleList(o3.Linear(layer.irreps_out, o3.Irreps("1x0e")) for layer in layers[:-1])
        self.readout_last = nn.Sequential(nn.Linear(config.channels, 16), nn.SiLU(), nn.Linear(16, 1))
        self.channels = config.channels

    def forward(self, species: Tensor, positions: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        sh, basis = self.edges(positions, edge_index)
        h = self.embedding(species)
        atom_energy = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
        for k, layer in enumerate(self.layers):
            h = layer(h, species, edge_index, sh, basis)
            if k < len(self.readouts):
                atom_energy = atom_energy + self.readouts[k](h).squeeze(-1)
        atom_energy = atom_energy + self.readout_last(h[:, : self.channels]).squeeze(-1)
        return h, atom_energy
