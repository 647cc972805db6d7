"""``aiida-hip-worker``: real stages on small molecules, and every input problem as a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT, sha256
from aiida_hip.worker import EXIT_INVALID_INPUT, EXIT_OK, read_results, write_input
from aiida_hip.worker.io import atoms_to_dict
from aiida_hip.worker.main import run_worker

WORKER = Path(sys.executable).with_name("aiida-hip-worker")


def water_entry(name="water", **extra):
    return {"name": name, "structures": {"structure": atoms_to_dict(molecule("H2O"))}, **extra}


def test_console_script_runs_freq_with_the_shipped_model(tmp_path):
    """The installed executable, as a CalcJob runs it: HIP Hessian of water, model hash reported."""
    write_input(tmp_path / "in.json", "freq", [water_entry()], settings={"expected": "minimum"})
    done = subprocess.run([str(WORKER), "in.json"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith("water: ")  # flushed before the worker's hard exit
    results, arrays = read_results(tmp_path)
    assert results["model"]["sha256"] == sha256(DEFAULT_CHECKPOINT)
    entry = results["reactions"][0]
    hessian = arrays[entry["arrays"]["hessian"]]
    assert hessian.shape == (9, 9) and np.allclose(hessian, hessian.T)
    assert entry["summary"]["freq"]["hessian_source"] == "predicted"
    assert entry["n_hessian_evaluations"] == 1


def test_many_reactions_one_bad_the_others_still_run(tmp_path):
    """One molecule with an element the model does not know: that one is invalid, the others finish."""
    bad = molecule("H2O")
    bad.symbols[0] = "S"
    entries = [
        water_entry("w1"),
        {"name": "sulfur", "structures": {"structure": atoms_to_dict(bad)}},
        water_entry("w2"),
    ]
    write_input(tmp_path / "in.json", "freq", entries, settings={"expected": "minimum"})
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, _ = read_results(tmp_path)
    outcomes = {e["name"]: e["outcome"] for e in results["reactions"]}
    assert outcomes["sulfur"] == "invalid_input"
    assert outcomes["w1"] in ("success", "wrong_imaginary_count") and outcomes["w2"] == outcomes["w1"]
    assert "[16]" in results["reactions"][1]["message"]


def test_opt_with_xtb(tmp_path):
    water = molecule("H2O")
    water.positions[1] += [0.0, 0.2, 0.0]
    entry = {"name": "water", "structures": {"structure": atoms_to_dict(water)}}
    write_input(tmp_path / "in.json", "opt", [entry], level={"calculator": "xtb", "hessian": "reference"})
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, arrays = read_results(tmp_path)
    entry = results["reactions"][0]
    assert entry["outcome"] == "success" and entry["summary"]["same_molecule"]
    assert results["model"] is None  # xTB only: no model was loaded
    assert np.all(arrays[entry["arrays"]["frequencies"]] > 1000)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"schema": "other"}), "schema"),
        (json.dumps({"schema": "aiida-hip-worker/1", "stage": "dance", "reactions": [{}]}), "unknown stage"),
        (json.dumps({"schema": "aiida-hip-worker/1", "stage": "freq", "reactions": []}), "non-empty"),
        (
            json.dumps(
                {
                    "schema": "aiida-hip-worker/1",
                    "stage": "freq",
                    "level": {"calculator": "mp2"},
                    "reactions": [{"structures": {}}],
                }
            ),
            "calculator must be",
        ),
    ],
)
def test_unusable_input_files(tmp_path, payload, match):
    (tmp_path / "in.json").write_text(payload)
    assert run_worker(tmp_path / "in.json") == EXIT_INVALID_INPUT
    results, _ = read_results(tmp_path)
    assert results["error"]["type"] == "invalid_input"
    assert match in results["error"]["message"]


def test_console_script_exit_code_and_message_survive_the_hard_exit(tmp_path):
    """The executable leaves with ``os._exit``: its exit code and its last words must still get out."""
    (tmp_path / "in.json").write_text("{not json")
    done = subprocess.run([str(WORKER), "in.json"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == EXIT_INVALID_INPUT
    assert done.stderr.startswith("aiida-hip-worker: invalid_input: ") and "not JSON" in done.stderr


def test_checkpoint_hash_mismatch_is_refused(tmp_path):
    (tmp_path / "model.pt").write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    checkpoint = {"file": "model.pt", "sha256": "0" * 64}
    write_input(tmp_path / "in.json", "freq", [water_entry()], checkpoint=checkpoint)
    assert run_worker(tmp_path / "in.json") == EXIT_INVALID_INPUT
    results, _ = read_results(tmp_path)
    assert "SHA-256" in results["error"]["message"]


def test_a_staged_copy_of_the_shipped_checkpoint_is_recorded_as_shipped(tmp_path):
    """A CalcJob stages the shipped file as model.pt: provenance must still say it is the shipped model."""
    (tmp_path / "model.pt").write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    checkpoint = {"file": "model.pt", "sha256": sha256(DEFAULT_CHECKPOINT)}
    write_input(tmp_path / "in.json", "freq", [water_entry()], checkpoint=checkpoint, settings={"expected": "minimum"})
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, _ = read_results(tmp_path)
    assert results["model"] == {"file": "model.pt", "sha256": sha256(DEFAULT_CHECKPOINT), "shipped": True}


def test_unknown_stage_setting_names_the_valid_ones(tmp_path):
    write_input(tmp_path / "in.json", "freq", [water_entry()], settings={"expectd": "ts"})
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, _ = read_results(tmp_path)
    entry = results["reactions"][0]
    assert entry["outcome"] == "invalid_input" and "expectd" in entry["message"] and "expected" in entry["message"]


def test_dft_stage_rejects_a_distorted_minimum(tmp_path):
    """PySCF HF/STO-3G on water with stretched bonds: not a stationary point (RMS force above 2e-3 Ha/Bohr)."""
    pytest.importorskip("pyscf")
    water = molecule("H2O")
    distorted = water.copy()
    distorted.positions[1] *= 1.15
    settings = {"functional": "hf", "basis": "sto-3g", "expected": "minimum"}
    entries = [{"name": "distorted", "structures": {"structure": atoms_to_dict(distorted)}}]
    write_input(tmp_path / "in.json", "dft", entries, settings=settings)
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, arrays = read_results(tmp_path)
    entry = results["reactions"][0]
    assert entry["outcome"] == "not_stationary", entry["message"]
    assert entry["summary"]["force_rms_ha_per_bohr"] > 2e-3 and entry["summary"]["verified"] is False
    assert arrays[entry["arrays"]["hessian"]].shape == (9, 9)


def test_whole_search_for_a_real_reaction(tmp_path):
    """The ts_search stage: HCN -> HNC with xTB on the Sella route, TS within 0.05 A of the reference."""
    from ase.io import read

    from aiida_hip.chem.geometry import aligned_rmsd

    data = Path(__file__).resolve().parents[1] / "data" / "reactions" / "hcn_hnc"
    structures = {role: atoms_to_dict(read(data / f"{role}.xyz")) for role in ("reactant", "product")}
    level = {"calculator": "xtb", "hessian": "reference"}
    write_input(
        tmp_path / "in.json", "ts_search", [{"name": "hcn", "structures": structures}], level, {"route": "sella"}
    )
    assert run_worker(tmp_path / "in.json") == EXIT_OK
    results, _ = read_results(tmp_path)
    entry = results["reactions"][0]
    assert entry["outcome"] == "success", entry["message"]
    assert entry["summary"]["irc_intended"] and entry["summary"]["n_imaginary"] == 1
    ts = np.array(entry["structures"]["ts"]["positions"])
    assert aligned_rmsd(ts, read(data / "ts_reference.xyz").positions) < 0.05
