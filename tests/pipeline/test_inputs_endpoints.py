"""Reaction input checks (clear errors, CLI exit codes without tracebacks) and the IRC endpoint verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import read, write
from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.pipeline import ReactionInputError, check_reaction, compare_endpoints, read_reaction, same_molecule

REACTIONS = Path(__file__).resolve().parents[1] / "data" / "reactions"
HCN = REACTIONS / "hcn_hnc"


def test_reads_a_real_pair():
    r, p = read_reaction(HCN / "reactant.xyz", HCN / "product.xyz")
    assert r.get_chemical_symbols() == p.get_chemical_symbols() == ["C", "N", "H"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r, p: (r, p[:2]), "reactant has 3 atoms but product has 2"),
        (lambda r, p: (r, p[[1, 0, 2]]), "same elements in the same atom order"),
        (lambda r, p: (r, r.copy()), "same geometry"),
        (lambda r, p: (r, Atoms("CNH", positions=[[0, 0, 0], [0.1, 0, 0], [2, 0, 0]])), "overlapping atoms"),
        (lambda r, p: (r, Atoms("CNH", positions=[[0, 0, 0], [np.nan, 0, 0], [2, 0, 0]])), "non-finite"),
    ],
)
def test_bad_pairs_are_named(change, message):
    r, p = read(HCN / "reactant.xyz"), read(HCN / "product.xyz")
    with pytest.raises(ReactionInputError, match=message):
        check_reaction(*change(r, p))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.xyz", str(HCN / "product.xyz")], "does not exist"),
        ([str(HCN / "reactant.xyz"), str(HCN / "reactant.xyz")], "same geometry"),
        ([str(HCN / "reactant.xyz"), "garbage.xyz"], "cannot read product file"),
        ([str(HCN / "reactant.xyz"), "water.xyz"], "reactant has 3 atoms but product has 3"),
    ],
)
def test_cli_bad_input_exits_nonzero_without_traceback(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    Path("garbage.xyz").write_text("this is not\nan xyz file\n")
    write("water.xyz", molecule("H2O"))
    result = CliRunner().invoke(main, ["ts-search", *args, "--out", "out"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    if message.startswith("reactant has 3 atoms but"):
        assert "same elements in the same atom order" in result.output
    else:
        assert message in result.output


def test_cli_unsupported_element_for_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write("r.xyz", Atoms("SH2", positions=[[0, 0, 0], [1.34, 0, 0], [0, 1.34, 0]]))
    write("p.xyz", Atoms("SH2", positions=[[0, 0, 0], [1.34, 0, 0], [-0.4, 1.3, 0]]))
    result = CliRunner().invoke(main, ["ts-search", "r.xyz", "p.xyz", "--out", "out"])
    assert result.exit_code != 0
    assert "not supported by the HIP model" in result.output
    assert "Traceback" not in result.output


def test_same_molecule_ignores_atom_order_but_not_bonds():
    water = molecule("H2O")
    swapped = water[[0, 2, 1]]
    assert same_molecule(water, swapped)
    stretched = water.copy()
    stretched.positions[1] *= 3.0
    assert not same_molecule(water, stretched)


def test_endpoint_verdicts():
    r, p = read(HCN / "reactant.xyz"), read(HCN / "product.xyz")
    assert compare_endpoints(r, p, p, r).verdict == "intended"
    assert compare_endpoints(r, p, r, p).verdict == "intended"
    same = compare_endpoints(r, p, r, r)
    assert same.verdict == "same_ends" and same.outcome == "irc_same_ends" and "same molecule" in same.message
    broken = r.copy()
    broken.positions[2] = [5.0, 5.0, 5.0]  # H leaves: neither reactant nor product
    other = compare_endpoints(r, p, broken, r)
    assert other.verdict == "unintended"
    assert other.forward_is == "other" and other.backward_is == "reactant"
    assert other.forward_bonds == [[0, 1]]


def test_degenerate_rearrangement_is_told_apart_by_atom_mapping():
    """H2O with the two O-H bonds swapped between labelled hydrogens: same molecule, different mapping."""
    r = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [3.0, 0, 0]])  # H1 bonded, H2 far
    p = Atoms("OHH", positions=[[0, 0, 0], [3.0, 0, 0], [0.96, 0, 0]])  # H2 bonded, H1 far
    assert same_molecule(r, p)
    assert compare_endpoints(r, p, p, r).verdict == "intended"
    assert compare_endpoints(r, p, r, r).verdict == "same_ends"
