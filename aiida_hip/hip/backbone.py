"""E(3)-equivariant message passing in the NequIP/MACE style, built on e3nn.

Node features carry ``C x (0e + 1o + ... + lmax)`` irreps. The backbone embeds elements, runs
``num_layers`` :class:`~aiida_hip.hip.blocks.Interaction` blocks and reads out per-atom energies.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor, nn

from .blocks import EdgeEmbedding, Interaction
from .config import HIPConfig
from .irreps import hidden_irreps


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
        """``species`` (N, n_elements) one-hot -> node features (N, D(hidden)), per-atom energies (N,)."""
        sh, basis = self.edges(positions, edge_index)  # (E, D(sh)), (E, num_bessel)
        h = self.embedding(species)  # (N, C)
        atom_energy = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)  # (N,)
        for k, layer in enumerate(self.layers):
            h = layer(h, species, edge_index, sh, basis)  # (N, D(hidden))
            if k < len(self.readouts):
                atom_energy = atom_energy + self.readouts[k](h).squeeze(-1)  # (N,)
        atom_energy = atom_energy + self.readout_last(h[:, : self.channels]).squeeze(-1)  # scalars (N, C) -> (N,)
        return h, atom_energy
