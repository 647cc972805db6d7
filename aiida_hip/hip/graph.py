"""Graphs of finite molecules in plain torch: all intra-molecular pairs, and a radius graph from them.

PyG's ``radius_graph`` needs pyg-lib, which cannot be installed here; molecules are small (< a few
hundred atoms), so enumerating every pair inside each molecule is both simple and fast.
"""

from __future__ import annotations

import torch
from torch import Tensor


def all_pairs(batch: Tensor, num_graphs: int) -> Tensor:
    """Directed pairs ``(j, i)``, ``i != j``, of atoms in the same molecule, as a (2, E) edge index.

    Row 0 is the source, row 1 the target (PyG convention). Edges are sorted by source, then target,
    which :func:`reverse_edges` relies on.
    """
    device = batch.device
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.cumsum(counts, 0) - counts
    per_node = counts[batch]
    src = torch.repeat_interleave(torch.arange(batch.numel(), device=device), per_node)
    starts = torch.repeat_interleave(torch.cumsum(per_node, 0) - per_node, per_node)
    dst = ptr[batch[src]] + torch.arange(src.numel(), device=device) - starts
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def radius_graph(positions: Tensor, batch: Tensor, num_graphs: int, cutoff: float) -> Tensor:
    """Directed edges between atoms of the same molecule closer than ``cutoff`` (Angstrom)."""
    edges = all_pairs(batch, num_graphs)
    with torch.no_grad():
        dist = (positions[edges[1]] - positions[edges[0]]).norm(dim=-1)
    return edges[:, dist < cutoff]


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Rows of ``src`` (E, ...) summed into ``dim_size`` rows by ``index`` (E,): messages onto atoms.

    Plain ``index_add`` (differentiable twice): importing PyG for this alone cost 0.65 s per process.
    """
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add(0, index, src)


def reverse_edges(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Index of edge ``(i, j)`` for every edge ``(j, i)``; the graph must contain both directions."""
    keys = edge_index[0] * num_nodes + edge_index[1]
    order = torch.argsort(keys)
    rev_keys = edge_index[1] * num_nodes + edge_index[0]
    pos = torch.searchsorted(keys[order], rev_keys)
    rev = order[pos.clamp(max=keys.numel() - 1)]
    if keys.numel() and not torch.equal(keys[rev], rev_keys):
        raise ValueError("edge index is not symmetric: a reverse edge is missing")
    return rev
