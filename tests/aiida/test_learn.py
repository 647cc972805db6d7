"""``hip.reaction_batch`` with ``learn``: the batch fine-tunes its model on its own reference Hessians, serves
the next reactions with it, and the lineage is in provenance (issue 29). Real worker, real xTB, shipped model."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_hip.calcjobs.finetune import HipFinetuneCalculation
from aiida_hip.cli import main
from aiida_hip.data import HipModelData
from aiida_hip.queries import FINETUNE_PROCESS_TYPE, model_lineage, served_model
from aiida_hip.workflows.batch_learn import learn_input_error
from aiida_hip.workflows.learn import pack_inputs, pack_reference_data, search_entries
from aiida_hip.workflows.reaction_batch import ReactionBatchWorkChain
from tests.conftest import REACTIONS, local_worker_code

# in batch order: ch3nc_ch3cn and hcn_hnc fall on the training side of the held-out hash, vinyl alcohol on the
# held-out side; every = 1, one at a time: a round after each of the first two
NAMES = ("ch3nc_ch3cn", "hcn_hnc", "vinyl_alcohol_acetaldehyde")


@pytest.fixture(scope="module")
def learned(aiida_profile, tmp_path_factory):
    from ase.io import read

    code = local_worker_code("localhost-learn", tmp_path_factory.mktemp("work"))

    def structure(path):
        node = orm.StructureData(ase=read(path))
        node.pbc = (False, False, False)
        return node

    reactions = {n: tuple(structure(REACTIONS / n / f"{role}.xyz") for role in ("reactant", "product")) for n in NAMES}
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        code, reactions, protocol="fast", overrides={"route": "sella"}, max_concurrent=1
    )
    builder.learn = orm.Dict({"every": 1, "epochs": 3, "max_minutes": 1.0})
    _, node = run_get_node(builder)
    return node, code


def test_the_batch_fine_tunes_and_serves_the_new_model(learned):
    batch, _ = learned
    assert batch.is_finished_ok, batch.exit_message
    rounds = batch.outputs.summary["learn"]
    assert len(rounds) == 2, rounds  # after the first two reactions; none after the last
    assert all(r["adopted"] for r in rounds), rounds  # no held-out reaction yet, or no worse on it
    searches = {n.label: n for n in batch.called if n.process_label == "TransitionStateWorkChain"}
    first, second, third = (served_model(searches[name]) for name in NAMES)
    assert first.base.attributes.get("source") == "shipped"
    assert second.uuid == rounds[0]["model"] and third.uuid == rounds[1]["model"]
    assert batch.outputs.model.uuid == third.uuid


def test_the_lineage_is_queryable(learned):
    batch, _ = learned
    searches = {n.label: n for n in batch.called if n.process_label == "TransitionStateWorkChain"}
    lineage = model_lineage(served_model(searches["vinyl_alcohol_acetaldehyde"]))
    # trained by a hip.finetune on the Hessians of the first two searches, from the model of round 0
    trainer = orm.load_node(lineage["trained_by"])
    assert trainer.process_type == FINETUNE_PROCESS_TYPE and trainer.is_finished_ok
    assert set(lineage["trained_on_searches"]) == {searches["ch3nc_ch3cn"].pk, searches["hcn_hnc"].pk}
    assert len(lineage["trained_on"]) >= 6  # a TS and two ends per verified reaction
    ts_hessian = searches["hcn_hnc"].outputs.ts_hessian
    assert ts_hessian.pk in lineage["trained_on"]
    parent = lineage["parent"]
    assert set(parent["trained_on_searches"]) == {searches["ch3nc_ch3cn"].pk}
    assert parent["parent"]["source"] == "shipped" and parent["parent"]["trained_by"] is None
    assert lineage["level"] == "GFN2-xTB"
    # and from the command line: which model served the reaction
    result = CliRunner().invoke(main, ["reactions", "show", str(searches["vinyl_alcohol_acetaldehyde"].pk)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["model"]
    assert shown["trained_by"] == lineage["trained_by"] and shown["parent"]["pk"] == parent["pk"]


def test_from_profile_writes_the_batch_labels(learned, tmp_path):
    batch, _ = learned
    result = CliRunner().invoke(main, ["data", "from-profile", "--batch", str(batch.pk), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["level"] == "GFN2-xTB" and sorted(manifest["shards"][0]["ids"]) == sorted(NAMES)
    result = CliRunner().invoke(main, ["data", "from-profile", "--group", "no-such-group", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "selection is empty" in result.output


def test_bad_fine_tune_inputs_are_refused(learned):
    batch, code = learned
    searches = [n for n in batch.called if n.process_label == "TransitionStateWorkChain"]
    entries = search_entries(searches)
    data = pack_reference_data(**pack_inputs(entries))
    model = HipModelData.from_checkpoint()
    ok = {"code": code, "model": model, "data": data}
    assert HipFinetuneCalculation.validate_inputs(ok, None) is None
    dft = pack_reference_data(**(pack_inputs(entries[:3]) | {"level": orm.Str("B3LYP/6-31G* (PySCF)")}))
    assert "new_level" in HipFinetuneCalculation.validate_inputs(ok | {"data": dft}, None)
    asked = ok | {"data": dft, "settings": orm.Dict({"new_level": True})}
    assert HipFinetuneCalculation.validate_inputs(asked, None) is None
    held_only = pack_reference_data(**pack_inputs([e for e in entries if e[0] == "vinyl_alcohol_acetaldehyde"]))
    assert "empty" in HipFinetuneCalculation.validate_inputs(ok | {"data": held_only}, None)
    assert "unknown fine-tune settings" in HipFinetuneCalculation.validate_inputs(
        ok | {"settings": orm.Dict({"learning_rate": 1})}, None
    )
    inputs = {"learn": orm.Dict({"every": 2}), "reactions_per_job": orm.Int(4), "ts_search": {}}
    assert "one hip.ts_search per reaction" in learn_input_error(inputs)


def test_a_dead_job_is_never_a_cache_source():
    """With caching on (the production profile), a rerun of a killed job must run, not copy its failure."""
    from aiida_hip.calcjobs.stages import HipTSOptCalculation

    for process in (HipFinetuneCalculation, HipTSOptCalculation):
        codes = process.spec().exit_codes
        assert codes.ERROR_OUTPUT_MISSING.invalidates_cache and codes.ERROR_OUTPUT_CORRUPT.invalidates_cache
        assert codes.ERROR_WORKER_CRASHED.invalidates_cache and not codes.ERROR_INVALID_INPUT.invalidates_cache
    assert not HipTSOptCalculation.spec().exit_codes.ERROR_NOT_CONVERGED.invalidates_cache
