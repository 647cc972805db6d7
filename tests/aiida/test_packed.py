"""Packed jobs: ``hip.ts_batch`` carries several reactions (real xTB runs), its parser keeps what a killed
worker finished, and ``hip.reaction_batch`` packs reactions into jobs and re-packs the unfinished ones."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from aiida_hip.calcjobs import structure_from_dict
from aiida_hip.calcjobs.batch import summarize_rows, summary_row
from aiida_hip.pipeline import TSSearchSettings
from aiida_hip.pipeline.inputs import read_reaction
from aiida_hip.reactions import bundled_reactions
from aiida_hip.worker.stages import build_settings
from aiida_hip.workflows import ReactionBatchWorkChain
from aiida_hip.workflows.reaction_batch import packed_settings, summarize_jobs

XTB = {"calculator": "xtb", "hessian": "reference"}


def pairs(*names: str) -> dict:
    bundled = bundled_reactions(extended=True)
    out = {}
    for name in names:
        atoms = read_reaction(*bundled[name])
        out[name] = tuple(
            structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()}) for a in atoms
        )
    return out


def test_protocol_folds_into_one_valid_settings_mapping(aiida_profile, hip_code):
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        hip_code, pairs("hcn_hnc"), protocol="fast", overrides={"route": "sella", "parameters": XTB}
    )
    settings = packed_settings(builder.ts_search._inputs(prune=True))
    built = build_settings(TSSearchSettings, settings, "ts_search")  # unknown keys would raise
    assert built.route == "sella" and built.freq_hessian == "exact"
    assert built.tsopt.convergence == "loose" and built.endpoint_opt.convergence == "loose"
    assert built.path.max_cycles == 30 and built.irc.max_cycles == 50
    assert built.refine == "xtb" and built.endpoint_opt.hessian_recalc is None  # the defaults travel too


def test_ts_batch_job_runs_every_reaction(aiida_profile, hip_code):
    reactions = pairs("hcn_hnc", "isocyanic_cyanic_acid")
    builder = CalculationFactory("hip.ts_batch").get_builder()
    builder.code = hip_code
    builder.parameters = orm.Dict(XTB)
    builder.settings = orm.Dict({"route": "sella"})
    builder.reactants = {name: pair[0] for name, pair in reactions.items()}
    builder.products = {name: pair[1] for name, pair in reactions.items()}
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    summary = results["output_parameters"].get_dict()
    assert summary["n_reactions"] == summary["n_done"] == 2
    assert [row["reaction"] for row in summary["reactions"]] == sorted(reactions)
    hcn = results["results"]["hcn_hnc"].get_dict()
    assert hcn["status"] == "success" and hcn["n_imaginary"] == 1 and hcn["irc_intended"]
    assert hcn["imaginary_frequency_cm1"] < -1000
    assert len(results["transition_states"]["hcn_hnc"].sites) == 3


def test_ts_batch_rejects_unpaired_and_mismatched_reactions(aiida_profile, hip_code):
    reactions = pairs("hcn_hnc", "ch3nc_ch3cn")
    builder = CalculationFactory("hip.ts_batch").get_builder()
    builder.code = hip_code
    builder.reactants = {"a": reactions["hcn_hnc"][0], "b": reactions["ch3nc_ch3cn"][0]}
    builder.products = {"a": reactions["hcn_hnc"][1]}
    with pytest.raises(ValueError, match="unpaired"):
        run_get_node(builder)
    builder.products = {"a": reactions["hcn_hnc"][1], "b": reactions["hcn_hnc"][1]}
    with pytest.raises(ValueError, match="reaction 'b'"):
        run_get_node(builder)


def test_parser_keeps_what_a_killed_worker_finished(aiida_profile, aiida_localhost):
    from aiida.common.links import LinkType
    from aiida.plugins import ParserFactory

    reactions = pairs("hcn_hnc", "isocyanic_cyanic_acid")
    node = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:hip.ts_batch")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    for name, (reactant, product) in reactions.items():
        for role, structure in (("reactants", reactant), ("products", product)):
            structure.store()
            node.base.links.add_incoming(structure, LinkType.INPUT_CALC, f"{role}__{name}")
    node.store()
    # what the worker writes after the first of two reactions, before it is killed
    finished = {
        "name": "hcn_hnc",
        "outcome": "success",
        "message": "TS verified",
        "summary": {"status": "success", "route": "sella", "barrier_forward_ev": 1.9, "irc_intended": True},
        "structures": {"ts": {"symbols": ["C", "N", "H"], "positions": [[0, 0, 0], [1.2, 0, 0], [0.6, 1.0, 0]]}},
        "wall_time_s": 3.0,
    }
    results_json = {"schema": "aiida-hip-worker/1", "status": "running", "error": None, "reactions": [finished]}
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_bytes(json.dumps(results_json).encode(), "results.json")
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="retrieved")
    retrieved.store()
    outputs, call = ParserFactory("hip.ts_batch").parse_from_node(node, store_provenance=False)
    assert call.exit_status == 305
    assert "1 of 2" in call.exit_message
    assert outputs["results"]["hcn_hnc"]["status"] == "success"
    assert "isocyanic_cyanic_acid" not in outputs["results"]
    rows = {row["reaction"]: row for row in outputs["output_parameters"]["reactions"]}
    assert rows["isocyanic_cyanic_acid"]["status"] == "no_result"


def test_batch_summary_from_job_summaries_later_result_wins(aiida_profile):
    """The packed batch's summary reads the jobs' own summaries: a reaction a job did not finish takes its row
    from the job it was packed into again (``job_10`` comes after ``job_2``), one nobody finished stays
    ``no_result``, and the rows follow the batch's order, not the jobs'."""

    def job(rows: dict) -> orm.Dict:
        return orm.Dict(summarize_rows([summary_row(name, data) for name, data in rows.items()]))

    ok = {"status": "success", "barrier_forward_ev": 1.0, "irc_intended": True}
    failed = {"status": "not_converged", "message": "no TS"}
    jobs = {
        "job_2": job({"b": None, "a": ok, "d": failed}),
        "job_10": job({"b": {**ok, "barrier_forward_ev": 2.0}, "c": None}),
    }
    summary = summarize_jobs(orm.List(["a", "b", "c", "d"]), **jobs).get_dict()
    rows = {row["reaction"]: row for row in summary["reactions"]}
    assert [row["reaction"] for row in summary["reactions"]] == ["a", "b", "c", "d"]
    assert rows["b"]["status"] == "success" and rows["b"]["barrier_forward_ev"] == 2.0
    assert rows["c"]["status"] == "no_result" and rows["d"]["status"] == "not_converged"
    assert summary["n_success"] == 2 and summary["counts"] == {"success": 2, "no_result": 1, "not_converged": 1}


def test_batch_packs_reactions_into_jobs(aiida_profile, hip_code):
    reactions = pairs("hcn_hnc", "isocyanic_cyanic_acid", "cyanamide_carbodiimide")
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        hip_code,
        reactions,
        protocol="fast",
        overrides={"route": "sella", "parameters": XTB},
        reactions_per_job=2,
        processes_per_job=2,
        max_concurrent=2,
        group_label="test/packed",
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    jobs = [n for n in node.called if n.process_type == "aiida.calculations:hip.ts_batch"]
    assert sorted(len(job.inputs.reactants) for job in jobs) == [1, 2]
    # the two-reaction job ran its reactions side by side (two processes, two cores asked for)
    for job in jobs:
        expected = 2 if len(job.inputs.reactants) == 2 else 1
        assert job.get_option("processes") == expected
        assert job.get_option("resources")["num_mpiprocs_per_machine"] == expected
    summary = results["summary"].get_dict()
    assert [row["reaction"] for row in summary["reactions"]] == sorted(reactions)
    assert summary["n_success"] >= 2, summary
    assert set(results["results"]) == set(reactions)
    assert {n.pk for n in orm.load_group("test/packed").nodes} == {job.pk for job in jobs}

    from aiida_hip.queries import reaction_detail, reaction_rows

    rows = reaction_rows(group="test/packed")
    assert sorted(row["reaction"] for row in rows) == sorted(reactions)
    assert all(row["job_pk"] in {job.pk for job in jobs} for row in rows)
    ok = next(row for row in rows if row["status"] == "success")
    assert ok["ts_pk"] is not None and ok["barrier_forward_ev"] > 0
    detail = reaction_detail(ok["pk"])
    assert detail["reaction"] == ok["reaction"] and detail["stages"][0]["process"] == "HipTSBatchCalculation"
    assert detail["outputs"]["ts"] == f"StructureData<{ok['ts_pk']}>"

    # packed jobs carry thermochemistry and the IRC energy profile, which the report shows
    verified = [row for row in summary["reactions"] if row["status"] == "success"]
    assert all(row["gibbs_barrier_forward_ev"] is not None and row["rate_forward_per_s"] > 0 for row in verified)
    from aiida_hip.report import collect_report, render_report

    data = collect_report(str(node.pk))
    assert sorted(e.row["reaction"] for e in data.entries) == sorted(reactions)
    for entry in data.entries:
        if entry.row["status"] == "success":
            assert entry.profile is not None and entry.ts_xyz is not None
            assert max(entry.profile["energy_ev"]) == pytest.approx(entry.row["barrier_forward_ev"], abs=1e-6)
            assert entry.summary["gibbs_barrier_forward_ev"] is not None
    page = render_report(data)
    assert page.count('<tr class="reaction') == 3 and "(job " in page


def test_identical_job_comes_from_the_cache(aiida_profile, hip_code):
    from aiida.manage.caching import enable_caching

    reactions = pairs("hcn_hnc")

    def job():
        builder = CalculationFactory("hip.ts_batch").get_builder()
        builder.code = hip_code
        builder.parameters = orm.Dict(XTB)
        builder.settings = orm.Dict({"route": "sella", "run_irc": False})
        builder.reactants = {name: pair[0] for name, pair in reactions.items()}
        builder.products = {name: pair[1] for name, pair in reactions.items()}
        return run_get_node(builder)[1]

    with enable_caching(identifier="aiida.calculations:hip.*"):
        first, second = job(), job()
    assert first.is_finished_ok and not first.base.caching.is_created_from_cache
    assert second.base.caching.is_created_from_cache
    assert second.base.caching.get_cache_source() == first.uuid
    assert second.outputs.results.hcn_hnc.get_dict()["status"] == first.outputs.results.hcn_hnc.get_dict()["status"]
