"""Reaction enumeration: valences kept, bond orders reassigned, known chemistry found."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_hip.dataset.generate import MOLECULES, split_of
from aiida_hip.dataset.reactions import VALENCE, _bond_orders, enumerate_reactions, read_smiles_file


def _all(smiles: str) -> list:
    return enumerate_reactions(smiles, np.random.default_rng(0), max_reactions=500)


def test_ethanol_dehydration_and_hydrogen_elimination():
    products = {r.product_smiles for r in _all("CCO")}
    assert "C=C.O" in products  # water elimination
    assert "CC=O.[H][H]" in products  # H2 elimination to acetaldehyde
    assert "COC" in products  # skeletal rearrangement to dimethyl ether


def test_keto_enol_tautomerism_shifts_bond_orders():
    reactions = {r.product_smiles: r for r in _all("CC=O")}
    assert "C=CO" in reactions
    r = reactions["C=CO"]
    assert r.move == "b1f1"
    assert sorted(r.product_bonds.values()).count(2) == 1  # the double bond moved to C=C


def test_ring_closure_of_butadiene():
    assert "C1=CCC1" in {r.product_smiles for r in _all("C=CC=C")}


@pytest.mark.parametrize("smiles", ["CCO", "C=CC=O", "NCC(=O)O", "C1CCOC1"])
def test_every_product_respects_valences(smiles):
    for r in _all(smiles):
        total = [0] * len(r.numbers)
        for (i, j), order in r.product_bonds.items():
            total[i] += order
            total[j] += order
        assert total == [VALENCE[z] for z in r.numbers], r.key
        assert r.product_smiles != r.reactant_smiles


def test_bond_order_solver_rejects_radicals():
    # methyl + H: C with three bonds cannot be closed-shell neutral
    assert _bond_orders([6, 1, 1, 1], {(0, 1), (0, 2), (0, 3)}) is None
    assert _bond_orders([6, 6, 1, 1, 1, 1], {(0, 1), (0, 2), (0, 3), (1, 4), (1, 5)})[(0, 1)] == 2


def test_unsupported_elements_rejected():
    with pytest.raises(ValueError, match="only H, C, N, O"):
        enumerate_reactions("CCCl", np.random.default_rng(0))


def test_molecule_list_is_ours_and_splits_are_stable():
    rows = read_smiles_file(MOLECULES)
    assert len(rows) >= 80
    assert split_of("CCO", 1) == split_of("CCO", 1)
    splits = [split_of(s, 20261125) for s, _ in rows]
    assert {"train", "val", "test"} <= set(splits)
