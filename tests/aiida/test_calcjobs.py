"""CalcJobs with the real worker on localhost (xTB for speed and determinism, HIP where it matters)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from tests.conftest import REACTIONS

XTB = {"calculator": "xtb", "hessian": "reference"}


def test_opt_calcjob_minimises_water(aiida_profile, hip_code, structure_of):
    from ase.build import molecule

    water = molecule("H2O")
    water.positions[1] += [0.0, 0.15, 0.1]
    builder = CalculationFactory("hip.opt").get_builder()
    builder.code = hip_code
    builder.structure = structure_of(water)
    builder.parameters = orm.Dict(XTB)
    builder.settings = orm.Dict({"opt": {"convergence": "tight"}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    params = results["output_parameters"].get_dict()
    assert params["outcome"] == "success" and params["same_molecule"]
    assert params["freq"]["n_imaginary"] == 0
    hessian = results["hessian"]
    assert hessian.get_array("hessian").shape == (9, 9)
    assert hessian.base.attributes.get("hessian_units") == "eV/angstrom^2"
    freqs = hessian.get_array("frequencies")
    assert np.all(freqs > 1000) and len(freqs) == 3  # bend + two stretches of water, cm^-1
    assert not any(results["structure"].pbc)


def test_dft_calcjob_checks_the_imaginary_count(aiida_profile, hip_code, structure_of):
    """HF/STO-3G on the xTB TS of HCN -> HNC, asked to be a minimum: exit code 500, Hessian still kept."""
    pytest.importorskip("pyscf")
    builder = CalculationFactory("hip.dft").get_builder()
    builder.code = hip_code
    builder.structure = structure_of(
        REACTIONS.parent.parent / "tests" / "data" / "reactions" / "hcn_hnc" / "ts_reference.xyz"
    )
    builder.settings = orm.Dict({"functional": "hf", "basis": "sto-3g", "expected": "minimum"})
    results, node = run_get_node(builder)
    assert node.exit_status == 500, node.exit_message
    params = results["output_parameters"].get_dict()
    assert params["n_imaginary"] >= 1 and params["method"] == "hf/sto-3g"
    assert results["hessian"].get_array("hessian").shape == (9, 9)


def test_scheduler_options_pass_through_untouched(aiida_profile, hip_code, structure_of, tmp_path, monkeypatch):
    """A GPU request given to the protocol builder reaches every stage and the job script, unchanged."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)  # a dry run writes submit_test/ into the working directory

    from aiida_hip.workflows import TransitionStateWorkChain

    gpu = "#SBATCH --gres=gpu:1\n#SBATCH --partition=gpu"
    options = {"custom_scheduler_commands": gpu, "max_wallclock_seconds": 1800}
    folder = REACTIONS / "hcn_hnc"
    reactant, product = structure_of(folder / "reactant.xyz"), structure_of(folder / "product.xyz")
    builder = TransitionStateWorkChain.get_builder_from_protocol(hip_code, reactant, product, options=options)
    for namespace in (builder.opt, builder.path, builder.tsopt.tsopt, builder.irc):
        assert namespace.metadata.options.custom_scheduler_commands == gpu
        assert namespace.model.sha256 == builder.path.model.sha256  # the shipped checkpoint, one node

    calc = CalculationFactory("hip.tsopt").get_builder()
    calc.code = hip_code
    calc.ts_guess = reactant
    calc.model = builder.path.model
    calc.metadata.options.custom_scheduler_commands = gpu
    calc.metadata.dry_run = True
    calc.metadata.store_provenance = False
    _, node = run_get_node(calc)
    submit = Path(node.dry_run_info["folder"])
    script = (submit / "_aiidasubmit.sh").read_text()
    assert gpu in script and "aiida.json" in script
    payload = json.loads((submit / "aiida.json").read_text())
    assert payload["stage"] == "tsopt" and payload["checkpoint"]["sha256"] == builder.path.model.sha256
    assert (submit / "model.pt").is_file()


@pytest.mark.parametrize(("scheduler", "interval"), [("core.direct", 0.1), ("core.slurm", 0.2)])
def test_setup_computers_poll_often_without_a_login_shell(aiida_profile, scheduler, interval):
    """``aiida-hip setup``'s computers: every scheduler command without ``bash -l`` (0.15 s of CPU each on
    a 2-core machine running the chemistry), polled often; the code runs the worker by its absolute path."""
    from aiida_hip.cli.setup import ensure_code
    from tests.conftest import worker_path

    label = f"setup-{scheduler.split('.')[1]}"
    code = ensure_code(str(worker_path()), label, scheduler=scheduler)
    computer = orm.load_computer(label)
    assert computer.scheduler_type == scheduler and code.computer.uuid == computer.uuid
    assert computer.get_minimum_job_poll_interval() == interval
    assert computer.get_authinfo(orm.User.collection.get_default()).get_auth_params()["use_login_shell"] is False
    with computer.get_transport() as transport:
        assert transport._bash_command_str == "bash "
        retval, stdout, _ = transport.exec_command_wait("echo ok")
    assert (retval, stdout.strip()) == (0, "ok")
    assert ensure_code(str(worker_path()), label, scheduler=scheduler).uuid == code.uuid  # idempotent
