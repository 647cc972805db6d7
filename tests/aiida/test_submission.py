"""Throttled submission without a daemon: reaction keys, what counts as submitted and active, the room a
round has, and clear refusals (the submitting itself is exercised by the integration suite)."""

from __future__ import annotations

from aiida import orm
from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.submission import KEYS_EXTRA, ThrottledSubmitter, reaction_key
from tests.aiida.test_packed import pairs

RECIPE = {"protocol": "fast", "overrides": {"route": "sella"}}


def test_reaction_key_is_stable_and_specific(aiida_profile):
    reactions = pairs("hcn_hnc", "ch3nc_ch3cn")
    reactant, product = reactions["hcn_hnc"]
    key = reaction_key(reactant, product, RECIPE)
    assert key == reaction_key(*pairs("hcn_hnc")["hcn_hnc"], RECIPE)  # new nodes, same reaction
    assert key != reaction_key(product, reactant, RECIPE)  # the reverse reaction is another search
    assert key != reaction_key(reactant, product, {**RECIPE, "protocol": "precise"})
    assert key != reaction_key(*reactions["ch3nc_ch3cn"], RECIPE)


def test_round_skips_submitted_keys_and_respects_max_active(aiida_profile):
    reactions = pairs("hcn_hnc", "ch3nc_ch3cn", "isocyanic_cyanic_acid")
    built = []
    submitter = ThrottledSubmitter(
        "test/throttle", reactions, RECIPE, lambda unit: built.append(unit), max_active=1, echo=lambda _: None
    )
    assert submitter.pending() == sorted(reactions)
    # a unit already in the group, still running: its reaction is taken and it fills the only slot
    running = orm.WorkflowNode().store()
    running.base.extras.set(KEYS_EXTRA, [submitter.keys["hcn_hnc"]])
    submitter.group.add_nodes(running)
    assert submitter.pending() == ["ch3nc_ch3cn", "isocyanic_cyanic_acid"]
    assert submitter.active() == [running]
    assert submitter.submit_round() == [] and built == []  # no room: nothing built, nothing submitted
    # a second submitter on the same group (a re-run of the script) sees the same state
    again = ThrottledSubmitter("test/throttle", reactions, RECIPE, lambda unit: None, max_active=5)
    assert again.pending() == ["ch3nc_ch3cn", "isocyanic_cyanic_acid"]


def test_submit_refuses_clearly(aiida_profile, tmp_path):
    runner = CliRunner()
    usage = runner.invoke(main, ["submit", str(tmp_path), "--max-active", "2"])
    assert usage.exit_code != 0 and "--max-active needs --daemon and --group" in usage.output
    # the test profile runs no daemon: a submission to it is refused in words, before anything is stored
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    down = runner.invoke(main, ["submit", str(tmp_path), "--daemon", "--group", "g"])
    assert down.exit_code != 0 and "Traceback" not in down.output
    assert "daemon" in down.output or "broker" in down.output, down.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
