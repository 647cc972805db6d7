"""The bad-input catalogue: each a clear validation error before anything runs, nothing stored half-way."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import molecule

from aiida_hip.data import HipModelData
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT
from aiida_hip.pipeline.inputs import read_batch
from aiida_hip.workflows import ReactionBatchWorkChain, TransitionStateWorkChain
from tests.conftest import REACTIONS

HCN = REACTIONS / "hcn_hnc"
XTB = {"parameters": {"calculator": "xtb", "hessian": "reference"}}


def _process_count() -> int:
    return orm.QueryBuilder().append(orm.ProcessNode).count()


def launch_fails(builder, match: str) -> None:
    before = _process_count()
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)
    assert _process_count() == before, "a process node was stored for invalid inputs"


def test_atom_order_mismatch(aiida_profile, hip_code, structure_of):
    reactant = structure_of(HCN / "reactant.xyz")
    product = structure_of(HCN / "product.xyz").get_ase()
    product = structure_of(product[[1, 0, 2]])
    builder = TransitionStateWorkChain.get_builder_from_protocol(hip_code, reactant, product, overrides=XTB)
    launch_fails(builder, "same elements in the same atom order")


def test_atom_count_mismatch(aiida_profile, hip_code, structure_of):
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(HCN / "reactant.xyz"), structure_of(molecule("H2O")), overrides=XTB
    )
    launch_fails(builder, "same atoms|same elements")


def test_periodic_structure(aiida_profile, hip_code, structure_of):
    reactant = structure_of(HCN / "reactant.xyz").get_ase()
    reactant.cell, reactant.pbc = [10.0, 10.0, 10.0], True
    periodic = orm.StructureData(ase=reactant)
    before = _process_count()
    with pytest.raises(ValueError, match="periodic structures are not supported"):  # refused by the builder
        TransitionStateWorkChain.get_builder_from_protocol(
            hip_code, periodic, structure_of(HCN / "product.xyz"), overrides=XTB
        )
    assert _process_count() == before


def test_unsupported_element_with_the_model(aiida_profile, hip_code, structure_of):
    reactant, product = molecule("H2O"), molecule("H2O")
    reactant.symbols[0] = product.symbols[0] = "Si"
    product.positions[1] += [0.0, 0.5, 0.0]
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(reactant), structure_of(product)
    )
    launch_fails(builder, r"elements \[14\] are not supported by the HIP model")


def test_checkpoint_hash_mismatch(aiida_profile):
    with pytest.raises(ValueError, match="not the expected"):
        HipModelData(DEFAULT_CHECKPOINT, sha256="f" * 64)
    node = HipModelData.from_checkpoint()
    assert node.is_stored and len(node.sha256) == 64
    assert HipModelData.from_checkpoint().pk == node.pk  # one node per checkpoint, reused


def test_not_a_checkpoint(aiida_profile, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        HipModelData(tmp_path / "junk.pt")


def test_empty_batch(aiida_profile, hip_code, structure_of):
    with pytest.raises(ValueError, match="empty"):
        ReactionBatchWorkChain.get_builder_from_protocol(hip_code, {}, overrides=XTB)
    pair = (structure_of(HCN / "reactant.xyz"), structure_of(HCN / "product.xyz"))
    builder = ReactionBatchWorkChain.get_builder_from_protocol(hip_code, {"hcn": pair}, overrides=XTB)
    builder.reactants, builder.products = {}, {}
    launch_fails(builder, "the batch is empty")


def test_unknown_route_and_protocol(aiida_profile, hip_code, structure_of):
    pair = structure_of(HCN / "reactant.xyz"), structure_of(HCN / "product.xyz")
    with pytest.raises(ValueError, match="unknown protocol"):
        TransitionStateWorkChain.get_builder_from_protocol(hip_code, *pair, protocol="sloppy")
    builder = TransitionStateWorkChain.get_builder_from_protocol(hip_code, *pair, overrides=XTB)
    with pytest.raises(ValueError, match="route must be one of"):
        builder.route = orm.Str("dimer")


def test_malformed_file_in_a_batch_folder(tmp_path):
    """One broken reaction folder is reported; the good ones are still read."""
    import shutil

    shutil.copytree(HCN, tmp_path / "hcn_hnc")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "reactant.xyz").write_text("3\n\nC 0 0 0\nN 0 0\n")
    shutil.copy(HCN / "product.xyz", tmp_path / "broken" / "product.xyz")
    (tmp_path / "lonely").mkdir()
    shutil.copy(HCN / "product.xyz", tmp_path / "lonely" / "product.xyz")
    good, bad = read_batch(tmp_path)
    assert list(good) == ["hcn_hnc"]
    assert set(bad) == {"broken", "lonely"}
    assert "cannot read reactant" in bad["broken"] and "expected one reactant" in bad["lonely"]


def test_reactions_from_a_group(aiida_profile, structure_of):
    """A batch can live in the database: StructureData in a group with extras reaction/role."""
    from click.testing import CliRunner

    from aiida_hip.cli import main
    from aiida_hip.queries import reaction_pairs_from_group, store_reaction_pairs

    pair = (structure_of(HCN / "reactant.xyz"), structure_of(HCN / "product.xyz"))
    store_reaction_pairs("test/inputs", {"hcn_hnc": pair})
    pairs = reaction_pairs_from_group("test/inputs")
    assert list(pairs) == ["hcn_hnc"] and pairs["hcn_hnc"][0].uuid == pair[0].uuid
    lonely = structure_of(HCN / "product.xyz").store()
    lonely.base.extras.set_many({"reaction": "lonely", "role": "product"})
    orm.load_group("test/inputs").add_nodes(lonely)
    with pytest.raises(ValueError, match=r"without both reactant and product.*lonely"):
        reaction_pairs_from_group("test/inputs")
    before = _process_count()
    result = CliRunner().invoke(main, ["submit", "--from-group", "test/inputs"])
    assert result.exit_code != 0 and "lonely" in result.output and "Traceback" not in result.output
    assert _process_count() == before
