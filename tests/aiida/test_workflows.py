"""The work chains end to end on localhost with the real worker."""

from __future__ import annotations

import pytest
from aiida.engine import run_get_node

from aiida_hip.workflows import TransitionStateWorkChain
from tests.conftest import REACTIONS

XTB = {"parameters": {"calculator": "xtb", "hessian": "reference"}}
#: HF/STO-3G keeps the DFT verification step to seconds in the fast suite
DFT = {"run_dft": True, "dft": {"settings": {"functional": "hf", "basis": "sto-3g", "expected": "ts"}}}


def test_ts_search_workchain_hcn_xtb(aiida_profile, hip_code, structure_of):
    """GSM/RS-P-RFO first, Sella if that fails (auto), IRC both ways, then an HF check of the TS."""
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
    assert summary["attempts"][-1] == {"route": summary["route"], "status": "success"}
    labels = {link.link_label.removesuffix("_sella") for link in node.base.links.get_outgoing().all()}
    assert {"opt_reactant", "opt_product", "path", "tsopt", "irc", "dft", "summarize"} <= labels
    assert summary["dft"]["method"] == "hf/sto-3g" and isinstance(summary["dft"]["n_imaginary"], int)
    assert results["dft_hessian"].get_array("hessian").shape == (9, 9)
    assert not any(results["ts"].pbc)
    # the TS Hessian came from the TS optimisation and went into the IRC unchanged (not recomputed)
    irc = next(n for n in node.called if n.process_label == "HipIRCCalculation" and n.is_finished_ok)
    assert irc.inputs.hessian.uuid == results["ts_hessian"].uuid
