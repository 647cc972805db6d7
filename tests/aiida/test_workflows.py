"""The work chains end to end on localhost with the real worker."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import ExitCode, ToContext, WorkChain, run_get_node
from ase.io import read

from aiida_hip.common.result import RESULT_FIELDS
from aiida_hip.workflows import TransitionStateWorkChain
from aiida_hip.workflows.base import HipTSOptBaseWorkChain
from aiida_hip.workflows.resume import SubmitOnceMixin
from tests.conftest import REACTIONS

#: reactions with an independent reference TS (``scripts/reference_ts.py``)
TEST_REACTIONS = Path(__file__).parents[1] / "data" / "reactions"
XTB = {"parameters": {"calculator": "xtb", "hessian": "reference"}}
#: HF/STO-3G keeps the DFT verification step to seconds in the fast suite
DFT = {"run_dft": True, "dft": {"settings": {"functional": "hf", "basis": "sto-3g", "expected": "ts"}}}


def test_ts_search_workchain_hcn_xtb(aiida_profile, hip_code, structure_of):
    """Sella first, pysisyphus if that fails (auto), IRC both ways, then an HF check of the TS."""
    folder = REACTIONS / "hcn_hnc"
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz"), overrides=XTB | DFT
    )
    builder.metadata.label = "hcn_hnc"
    results, node = run_get_node(builder)
    summary = results["output_parameters"].get_dict()
    assert node.is_finished_ok, (node.exit_message, summary)
    assert summary["status"] == "success" and summary["irc_intended"]
    assert summary["n_imaginary"] == 1
    assert summary["imaginary_frequency_cm1"] == pytest.approx(-1426, abs=30)
    assert summary["barrier_forward_ev"] == pytest.approx(3.18, abs=0.1)
    assert [(a["attempt"], a["status"]) for a in summary["attempts"]] == [("sella:highest:level", "success")]
    labels = {link.link_label.removesuffix("_sella") for link in node.base.links.get_outgoing().all()}
    assert {"opt_reactant", "opt_product", "path", "tsopt", "irc", "dft", "summarize"} <= labels
    assert summary["dft"]["method"] == "hf/sto-3g" and isinstance(summary["dft"]["n_imaginary"], int)
    assert results["dft_hessian"].get_array("hessian").shape == (9, 9)
    assert not any(results["ts"].pbc)
    # the TS Hessian came from the TS optimisation and went into the IRC unchanged (not recomputed)
    irc = next(n for n in node.called if n.process_label == "HipIRCCalculation" and n.is_finished_ok)
    assert irc.inputs.hessian.uuid == results["ts_hessian"].uuid
    # RRHO thermochemistry of the verified TS: ZPE lowers the H-transfer barrier, Eyring from the Gibbs barrier
    thermo = results["thermochemistry"].get_dict()
    assert thermo["temperature_k"] == 298.15
    assert 2.8 < thermo["gibbs_barrier_forward_ev"] < summary["barrier_forward_ev"]
    assert thermo["species"]["ts"]["n_modes_used"] == 2  # bent TS: 3N - 6 = 3 modes, one imaginary
    assert thermo["rate_forward_per_s"] == pytest.approx(
        6.2124e12 * math.exp(-thermo["gibbs_barrier_forward_ev"] / (8.617333e-5 * 298.15)), rel=1e-3
    )
    assert summary["gibbs_barrier_forward_ev"] == thermo["gibbs_barrier_forward_ev"]


def test_auto_route_falls_back_to_pysisyphus_in_provenance(aiida_profile, hip_code, structure_of):
    """Sella is made to fail (one step, no restart): the work chain runs the pysisyphus route next, whose
    CalcJobs sit beside the failed Sella ones, and verifies the TS there."""
    from aiida.common.links import LinkType

    from aiida_hip.chem.geometry import aligned_rmsd

    folder = TEST_REACTIONS / "ch3nc_ch3cn"  # HCN -> HNC: the pysisyphus route's CI-NEB path there is erratic
    overrides = XTB | {
        "tsopt": {"max_iterations": 1, "settings": {"sella": {"max_steps": 1}}},
        "attempts": ["sella:highest:level", "pysisyphus:highest:level"],  # the route fallback alone
    }
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz"), overrides=overrides
    )
    results, node = run_get_node(builder)
    summary = results["output_parameters"].get_dict()
    assert node.is_finished_ok, (node.exit_message, summary)
    assert summary["route"] == "pysisyphus" and summary["status"] == "success"
    assert [(a["route"], a["status"]) for a in summary["attempts"]] == [
        ("sella", "not_converged"),
        ("pysisyphus", "success"),
    ]
    called = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    labels = {link.link_label: link.node for link in called}
    assert {"path_sella", "tsopt_sella", "path", "tsopt", "irc"} <= labels.keys() and "irc_sella" not in labels
    assert not labels["tsopt_sella"].is_finished_ok and labels["tsopt"].is_finished_ok
    reference = read(folder / "ts_reference.xyz").positions
    assert aligned_rmsd(results["ts"].get_ase().positions, reference) < 0.05


def test_two_level_search_puts_both_levels_into_provenance(aiida_profile, hip_code, structure_of):
    """HIP explores (path, TS pre-optimisation), xTB confirms (refined TS, its one xTB Hessian, ends and IRC):
    both TSs and both levels are in provenance, the HIP stage linked before its refinement."""
    from aiida.common.links import LinkType

    folder = TEST_REACTIONS / "hcn_hnc"
    overrides = {"route": "sella", "refine": "xtb", "guess": "hip"}
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz"), "fast", overrides
    )
    results, node = run_get_node(builder)
    summary = results["output_parameters"].get_dict()
    assert node.is_finished_ok, (node.exit_message, summary)
    assert summary["refine"] == "xtb" and summary["irc_intended"]
    assert set(RESULT_FIELDS) <= summary.keys()  # the one result schema (the pipeline's result.json too)
    assert summary["barrier_forward_ev"] == pytest.approx(3.18, abs=0.1)  # an xTB barrier: the xTB TS
    assert "ts_hip" in results and "ts" in results and summary["hip_ts_rmsd_a"] is not None
    called = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    labels = {link.link_label: link.node for link in called}
    assert {"tsopt_sella", "tsopt_refine_sella", "irc_sella"} <= labels.keys()
    assert labels["tsopt_sella"].ctime < labels["tsopt_refine_sella"].ctime
    hip_level = labels["tsopt_sella"].inputs.tsopt.parameters.get_dict()
    refine_level = labels["tsopt_refine_sella"].inputs.tsopt.parameters.get_dict()
    assert hip_level["calculator"] == "hip" and refine_level == {"calculator": "xtb", "hessian": "predicted"}
    assert labels["irc_sella"].inputs.parameters.get_dict() == {"calculator": "xtb", "hessian": "none"}
    judge = next(n for n in labels["tsopt_refine_sella"].called if n.is_finished_ok)
    assert judge.outputs.hessian.base.attributes.get("hessian_source") == "reference"
    assert summary["reference_cost"]["hessians"] >= 1


def test_outcome_is_the_same_at_every_level(aiida_profile, hip_code, structure_of):
    """One outcome name and one exit code from the worker up: a Sella TS search stopped after one step is
    ``not_converged`` in the worker's output, exit 401 on its CalcJob, 401 on ``hip.ts_search`` and
    ``not_converged`` in ``reactions list``."""
    from aiida_hip.common.exit_codes import OUTCOME_EXIT_CODES
    from aiida_hip.common.types import Outcome
    from aiida_hip.queries import reaction_rows

    folder = TEST_REACTIONS / "hcn_hnc"
    overrides = XTB | {
        "route": "sella",
        "max_attempts": 1,
        "tsopt": {"max_iterations": 1, "settings": {"sella": {"max_steps": 1}}},
    }
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz"), overrides=overrides
    )
    builder.metadata.label = "outcome_chain"
    results, node = run_get_node(builder)
    code = OUTCOME_EXIT_CODES[Outcome.NOT_CONVERGED]
    tsopt = next(n for n in node.called_descendants if n.process_label == "HipTSOptCalculation")
    assert tsopt.outputs.output_parameters["outcome"] == "not_converged"
    assert tsopt.exit_status == code.status == 401
    assert node.exit_status == code.status and node.exit_message.startswith("The optimisation did not converge")
    assert results["output_parameters"]["status"] == "not_converged"
    assert [(a["route"], a["status"]) for a in results["output_parameters"]["attempts"]] == [("sella", "not_converged")]
    row = next(r for r in reaction_rows() if r["pk"] == node.pk)
    assert row["status"] == "not_converged"


def test_a_failed_attempt_is_followed_by_the_next_guess(aiida_profile, hip_code, structure_of):
    """The plan's first attempt asks for the second maximum of a path that has one: the attempt ends with
    path_failed and its reason, the next attempt (the highest image, Hessian-free) verifies the TS by QRC, and
    every attempt with its outcome is in the summary and in the CalcJobs' link labels."""
    folder = REACTIONS / "hcn_hnc"
    overrides = XTB | {"route": "sella", "verify": "qrc", "attempts": ["sella:second:none", "sella:highest:none"]}
    builder = TransitionStateWorkChain.get_builder_from_protocol(
        hip_code, structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz"), "fast", overrides
    )
    results, node = run_get_node(builder)
    summary = results["output_parameters"].get_dict()
    assert node.is_finished_ok, (node.exit_message, summary)
    first, second = summary["attempts"]
    assert first["attempt"] == "sella:second:none" and first["status"] == "path_failed"
    assert "no guess of rank 1" in first["message"]
    assert second["attempt"] == "sella:highest:none" and second["status"] == "success"
    assert second["hessian_free"] and summary["irc_intended"]
    labels = {link.link_label for link in node.base.links.get_outgoing().all()}
    assert {"path_sella", "path_sella_a2", "tsopt_sella_a2", "irc_sella_a2"} <= labels
    irc = next(n for n in node.called_descendants if n.process_label == "HipIRCCalculation")
    assert irc.outputs.output_parameters["irc"]["method"] == "qrc"


def _geometry_builder(code, structure, settings, hessian="reference"):
    from aiida_hip.workflows import HipGeometryWorkChain

    builder = HipGeometryWorkChain.get_builder()
    builder.opt.code = code
    builder.opt.structure = structure
    builder.opt.parameters = orm.Dict({"calculator": "xtb", "hessian": hessian})
    builder.opt.settings = orm.Dict(settings)
    return builder


def test_geometry_workchain_leaves_a_saddle(aiida_profile, hip_code, structure_of):
    """Started on the xTB TS of HCN -> HNC (forces ~ 0) with a positive model Hessian (hessian 'none'),
    the minimisation stops on the saddle; frequencies (exact xTB Hessian) show the imaginary mode, the
    handler pushes the geometry down it and the second minimisation finds HCN or HNC."""
    ts = TEST_REACTIONS / "hcn_hnc" / "ts_reference.xyz"
    results, node = run_get_node(_geometry_builder(hip_code, structure_of(ts), {}, hessian="none"))
    assert node.is_finished_ok, node.exit_message
    thermo = results["thermochemistry"].get_dict()  # of the minimum it found (HCN or HNC: linear, 3N - 5 = 4)
    assert thermo["n_modes_used"] == 4 and 0.3 < thermo["zpe"] < 0.5
    assert thermo["gibbs_energy"] < thermo["enthalpy"] < thermo["electronic_energy"] + thermo["zpe"] + 0.2
    calcs = sorted((n for n in node.called if n.process_label == "HipOptCalculation"), key=lambda n: n.ctime)
    assert [c.exit_status for c in calcs] == [500, 0]
    assert calcs[0].outputs.output_parameters["freq"]["n_imaginary"] == 1
    params = results["output_parameters"].get_dict()
    assert params["freq"]["n_imaginary"] == 0 and params["freq"]["zpe_ev"] > 0.3
    assert node.base.links.get_outgoing(link_label_filter="%displace%").all() or any(
        n.process_label == "displace_along_mode" for n in node.called
    )


def test_geometry_workchain_restarts_when_out_of_steps(aiida_profile, hip_code, structure_of):
    from ase.build import molecule

    water = molecule("H2O")
    water.positions[1] += [0.0, 0.3, 0.2]
    _, node = run_get_node(_geometry_builder(hip_code, structure_of(water), {"opt": {"max_cycles": 2}}))
    assert node.is_finished_ok, node.exit_message
    calcs = sorted((n for n in node.called if n.process_label == "HipOptCalculation"), key=lambda n: n.ctime)
    assert calcs[0].exit_status == 401 and len(calcs) >= 2
    assert calcs[1].inputs.settings["opt"]["max_cycles"] == 3
    assert calcs[1].inputs.structure.uuid == calcs[0].outputs.structure.uuid  # restarted from its last geometry


class _Child(WorkChain):
    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outline(cls.done)

    def done(self):
        pass


class _SubmitsTwice(SubmitOnceMixin, WorkChain):
    """A step that runs again after an interrupted checkpoint does what this step does twice in a row."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outline(cls.launch, cls.check)

    def launch(self):
        first = self.submit(_Child, metadata={"call_link_label": "stage"})
        again = self.submit(_Child, metadata={"call_link_label": "stage"})
        self.ctx.same = first.pk == again.pk
        return ToContext(child=again)

    def check(self):
        if not (self.ctx.same and self.ctx.child.is_finished_ok):
            return ExitCode(400, "the second submit did not return the first child")


class _InterruptedSubmit(_SubmitsTwice):
    """A worker killed inside ``submit``: the child's node and call link are stored, its state and checkpoint not."""

    def launch(self):
        orphan = self.runner.instantiate_process(_Child, metadata={"call_link_label": "stage"})
        orphan.close()
        orphan.node.delete_checkpoint()
        orphan.node.base.attributes.delete(orphan.node.PROCESS_STATE_KEY)
        # the uuid, not the pk: SQLite may give a deleted row's pk to the next node
        self.node.base.extras.set("orphan", orphan.node.uuid)
        return ToContext(child=self.submit(_Child, metadata={"call_link_label": "stage"}))

    def check(self):
        if self.ctx.child.uuid == self.node.base.extras.get("orphan") or not self.ctx.child.is_finished_ok:
            return ExitCode(400, "the orphan was reused")


def test_submit_is_idempotent_per_call_link_label(aiida_profile):
    """A step re-run after a killed worker reuses the child it already submitted (no duplicate stage)."""
    _, node = run_get_node(_SubmitsTwice)
    assert node.is_finished_ok, node.exit_status
    calls = [link for link in node.base.links.get_outgoing().all() if link.link_type.value == "call_work"]
    assert [link.link_label for link in calls] == ["stage"]
    assert any("was already submitted; reusing it" in log.message for log in orm.Log.collection.get_logs_for(node))
    # aiida-core's BaseRestartWorkChain submits from its own ``run_process``: covered through ``submit``
    assert HipTSOptBaseWorkChain.submit is SubmitOnceMixin.submit


@pytest.mark.timeout(120, method="thread")  # without the fix the work chain waits for ever: fail, do not hang
def test_submit_replaces_a_child_that_never_started(aiida_profile):
    """Reusing a child whose submission was cut off before its checkpoint would wait forever."""
    _, node = run_get_node(_InterruptedSubmit)
    assert node.is_finished_ok, node.exit_status
    calls = [link.node for link in node.base.links.get_outgoing().all() if link.link_type.value == "call_work"]
    assert len(calls) == 1 and calls[0].is_finished_ok
    with pytest.raises(NotExistent):
        orm.load_node(node.base.extras.get("orphan"))  # deleted: it never ran and has no outputs
    assert any("never started; deleting it" in log.message for log in orm.Log.collection.get_logs_for(node))
