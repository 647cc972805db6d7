"""Irreps helpers shared by the backbone and the Hessian head (MACE's ``irreps_tools``).

Everything here builds or manipulates e3nn irreps; nothing holds parameters.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor


def hidden_irreps(channels: int, lmax: int) -> o3.Irreps:
    """``C x 0e + C x 1o + C x 2e + ...``: the natural parities of spherical harmonics."""
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


def block_irreps(channels: int) -> o3.Irreps:
    """``C x 0e + C x 1e + C x 2e``: ``C`` rank-2 Cartesian tensors, the irreps of ``1o x 1o``."""
    return o3.Irreps(f"{channels}x0e + {channels}x1e + {channels}x2e")


#: One 3x3 Cartesian block: trace (0e), antisymmetric part (1e), symmetric traceless part (2e).
BLOCK_IRREPS = block_irreps(1)


def gate_irreps(irreps_out: o3.Irreps) -> tuple[o3.Irreps, o3.Irreps, o3.Irreps]:
    """``(scalars, gates, gated)`` for an ``e3nn.nn.Gate`` that outputs ``irreps_out``.

    Scalars pass through an activation; every non-scalar irrep is multiplied by one ``0e`` gate.
    """
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps([(gated.num_irreps, "0e")])
    return scalars, gates, gated


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


def cartesian_change_of_basis() -> Tensor:
    """Clebsch-Gordan change of basis (9, 3, 3) from ``BLOCK_IRREPS`` features to 3x3 blocks of ``1o x 1o``."""
    rtp = o3.ReducedTensorProducts("ij", i="1o", j="1o")
    if rtp.irreps_out != BLOCK_IRREPS:
        raise RuntimeError(f"unexpected change-of-basis irreps {rtp.irreps_out}")
    return rtp.change_of_basis.clone()


def irreps_to_cartesian(x: Tensor, change_of_basis: Tensor) -> Tensor:
    """``BLOCK_IRREPS`` features (..., 9) -> Cartesian 3x3 blocks (..., 3, 3)."""
    return torch.einsum("...k,kab->...ab", x, change_of_basis.to(x.dtype))
