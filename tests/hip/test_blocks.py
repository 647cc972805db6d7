"""Irreps helpers, the pair and diagonal blocks of the Hessian head, and legacy checkpoint keys."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3

from aiida_hip.hip import HIPConfig, build_model, load_model, save_checkpoint
from aiida_hip.hip import heads as heads_module
from aiida_hip.hip.checkpoints import (
    DEFAULT_CHECKPOINT,
    LEGACY_KEY_PREFIXES,
    CheckpointError,
    read_checkpoint,
    upgrade_state_dict,
)
from aiida_hip.hip.heads import DiagonalBlock, PairBlock
from aiida_hip.hip.irreps import (
    BLOCK_IRREPS,
    block_irreps,
    cartesian_change_of_basis,
    gate_irreps,
    hidden_irreps,
    irreps_to_cartesian,
)


def test_irreps_helpers():
    assert hidden_irreps(4, 2) == o3.Irreps("4x0e + 4x1o + 4x2e")
    assert block_irreps(3) == o3.Irreps("3x0e + 3x1e + 3x2e")
    assert BLOCK_IRREPS.dim == 9
    scalars, gates, gated = gate_irreps(hidden_irreps(4, 2))
    assert (scalars, gates, gated) == (o3.Irreps("4x0e"), o3.Irreps("8x0e"), o3.Irreps("4x1o + 4x2e"))


@pytest.fixture
def float64_default():
    """e3nn builds the change of basis and Wigner D matrices in the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_change_of_basis_is_equivariant_and_splits_symmetry(float64_default):
    q = cartesian_change_of_basis()  # (9, 3, 3)
    x = torch.randn(9, dtype=torch.float64)
    R = o3.rand_matrix(dtype=torch.float64)
    D = BLOCK_IRREPS.D_from_matrix(R)
    torch.testing.assert_close(irreps_to_cartesian(D @ x, q), R @ irreps_to_cartesian(x, q) @ R.T)
    trace, anti, sym = (irreps_to_cartesian(x * mask, q) for mask in torch.eye(9, dtype=x.dtype)[[0, 1, 4]])
    torch.testing.assert_close(trace, trace[0, 0] * torch.eye(3, dtype=x.dtype))
    torch.testing.assert_close(anti, -anti.T)
    torch.testing.assert_close(sym, sym.T)
    assert abs(float(torch.trace(sym))) < 1e-12


def test_pair_and_diagonal_block_shapes():
    small, target = hidden_irreps(2, 2), block_irreps(2)
    pair = PairBlock(small, target, basis_range=6.0, num_basis=5, cutoff=None, poly_p=6, radial_hidden=8)
    diagonal = DiagonalBlock(small, pair.irreps_out, avg_num_neighbors=3.0)
    n, pairs = 4, torch.tensor([[0, 1, 2, 3, 1], [1, 0, 3, 2, 2]])
    a, b = torch.randn(n, small.dim), torch.randn(n, small.dim)
    features, raw_off = pair(a, b, torch.randn(n, 3), pairs)
    assert features.shape == (5, target.dim) and raw_off.shape == (5, 9)
    assert diagonal(a, features, pairs[1]).shape == (n, 9)


def test_head_composes_the_blocks(model64):
    head = model64.hessian_head
    assert isinstance(head.pair, PairBlock) and isinstance(head.diagonal, DiagonalBlock)


def test_heads_does_not_import_the_backbone():
    tree = ast.parse(Path(heads_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "backbone" not in imported, imported


def _legacy(state: dict) -> dict:
    """The layout before the head was split: the inverse of ``LEGACY_KEY_PREFIXES``."""
    inverse = {new: old for old, new in LEGACY_KEY_PREFIXES.items()}
    out = {}
    for key, value in state.items():
        new = next((p for p in inverse if key.startswith(p)), None)
        out[key if new is None else inverse[new] + key[len(new) :]] = value
    return out


def test_upgrade_state_dict_maps_legacy_keys_only(model64):
    state = model64.state_dict()
    legacy = _legacy(state)
    assert "hessian_head.pair_mix_edge.weight" in legacy and "hessian_head.diag_mix.weight" in legacy
    assert list(upgrade_state_dict(legacy)) == list(state)
    assert list(upgrade_state_dict(state)) == list(state)  # current keys pass unchanged
    with pytest.raises(CheckpointError, match="both the legacy and the current key"):
        upgrade_state_dict({**state, "hessian_head.pair_out.weight": state["hessian_head.pair.pair_out.weight"]})


def test_legacy_checkpoint_loads_with_identical_predictions(model64, ethanol, tmp_path):
    path = save_checkpoint(model64, tmp_path / "current.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = _legacy(payload["state_dict"])
    torch.save(payload, tmp_path / "legacy.pt")
    a = load_model(tmp_path / "legacy.pt", dtype=torch.float64).predict(*ethanol)
    b = model64.predict(*ethanol)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["hessian"], b["hessian"])


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no checkpoint ships yet")
def test_shipped_checkpoint_keys_map_onto_the_model():
    payload = read_checkpoint(DEFAULT_CHECKPOINT)
    model = build_model(HIPConfig.from_dict(payload["config"]))
    assert list(upgrade_state_dict(payload["state_dict"])) == list(model.state_dict())
