"""Real TS searches on small reactions: GFN2-xTB against independent reference TSs, and the HIP model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from click.testing import CliRunner

from aiida_hip.chem.geometry import aligned_rmsd
from aiida_hip.chem.thermo import eyring_rate
from aiida_hip.cli import main
from aiida_hip.common.types import AUTO_ORDER, Outcome, choices
from aiida_hip.pipeline import Level, TSSearchSettings, read_reaction, ts_search

REACTIONS = Path(__file__).resolve().parents[1] / "data" / "reactions"
RESULT_KEYS = {
    "status",
    "ts_found",
    "n_imaginary",
    "imaginary_frequency_cm1",
    "irc_intended",
    "barrier_forward_ev",
    "barrier_reverse_ev",
    "n_tsopt_steps",
    "n_hessian_evaluations",
    "wall_time_s",
    "files",
}


@pytest.mark.parametrize(
    ("name", "route"), [("hcn_hnc", "pysisyphus"), ("ch3nc_ch3cn", "pysisyphus"), ("ch3nc_ch3cn", "sella")]
)
def test_xtb_finds_the_reference_ts(tmp_path, name, route):
    """Reference: geodesic + Sella with exact xTB Hessians at 1e-3 eV/A (scripts/reference_ts.py)."""
    folder = REACTIONS / name
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    result = ts_search(r, p, tmp_path, Level(calculator="xtb", hessian="reference"), TSSearchSettings(route=route))
    assert result.status == "success", result.message
    assert result.route == route
    assert result.ts_found and result.irc_intended
    assert result.n_imaginary == 1
    assert aligned_rmsd(result.ts.positions, read(folder / "ts_reference.xyz").positions) < 0.05
    assert result.barrier_forward_ev > 0 and result.barrier_reverse_ev > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert set(saved) >= RESULT_KEYS
    assert (tmp_path / saved["files"]["ts"]).is_file() and (tmp_path / saved["files"]["irc"]).is_file()
    assert saved["wall_time_s"]["total"] >= sum(v for k, v in saved["wall_time_s"].items() if k != "total") * 0.99
    # the energy along the IRC: every point kept, the TS on top at s = 0, both ends downhill
    profile = saved["stages"]["irc" if route == "pysisyphus" else "irc_sella"]["profile"]
    s, energy = np.array(profile["s_angstrom"]), np.array(profile["energy_ev"])
    assert len(s) == len(energy) == saved["stages"]["irc" if route == "pysisyphus" else "irc_sella"]["n_points"]
    top = int(np.argmax(energy))
    assert s[top] == 0 and s[0] < 0 < s[-1] and np.all(np.diff(s) >= 0)
    assert energy[top] - min(energy[0], energy[-1]) > 0.5 * result.barrier_reverse_ev
    # thermochemistry of the verified TS (RRHO, 298.15 K), consistent with the electronic barriers
    thermo = saved["thermochemistry"]
    assert thermo["temperature_k"] == 298.15 and thermo["ends_n_imaginary"] == {"reactant": 0, "product": 0}
    assert thermo["species"]["ts"]["electronic_energy"] - thermo["species"]["reactant"]["electronic_energy"] == (
        pytest.approx(result.barrier_forward_ev, abs=1e-9)
    )
    assert abs(thermo["gibbs_barrier_forward_ev"] - result.barrier_forward_ev) < 0.3  # ZPE + thermal corrections
    assert thermo["rate_forward_per_s"] == pytest.approx(eyring_rate(thermo["gibbs_barrier_forward_ev"]), rel=1e-12)


def test_hessian_free_baseline_needs_more_steps(tmp_path):
    folder = REACTIONS / "ch3nc_ch3cn"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    exact = ts_search(
        r, p, tmp_path / "exact", Level(calculator="xtb", hessian="reference"), TSSearchSettings(route="pysisyphus")
    )
    free = ts_search(
        r, p, tmp_path / "free", Level(calculator="xtb", hessian="none"), TSSearchSettings(route="pysisyphus")
    )
    assert free.status == "success", free.message
    assert aligned_rmsd(free.ts.positions, exact.ts.positions) < 0.05
    assert free.stages["tsopt"]["n_hessian_evaluations"] == 0
    assert exact.n_tsopt_steps < free.n_tsopt_steps


def test_cli_ts_search_with_the_shipped_model(tmp_path, monkeypatch):
    """The HIP pipeline runs to a reported status, consistent with itself, writing nothing into the cwd."""
    folder = REACTIONS / "hcn_hnc"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["ts-search", str(folder / "reactant.xyz"), str(folder / "product.xyz"), "--out", str(out)]
    )
    assert list((tmp_path / "cwd").iterdir()) == []
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] in choices(Outcome)
    assert result.exit_code == (0 if saved["status"] == "success" else 1)
    assert "Traceback" not in result.output and saved["status"] in result.output
    assert saved["level"]["calculator"] == "hip" and saved["level"]["hessian"] == "predicted"
    assert saved["refine_level"]["calculator"] == "xtb"  # the two-level search is the default
    assert saved["n_hessian_evaluations"] > 0
    if saved["ts_found"]:
        assert saved["n_imaginary"] == 1 and saved["imaginary_frequency_cm1"] < 0


def test_rfo_bfgs_from_the_level_hessian(tmp_path):
    """The seed's "RFO-BFGS, ... init": one Hessian of the level at the start, BFGS updates after; the
    Lindh guess start computes none."""
    from ase.build import molecule

    from aiida_hip.pipeline.calculators import Evaluator
    from aiida_hip.pipeline.opt import OptSettings, run_opt

    ethanol = molecule("CH3CH2OH")
    ethanol.positions += np.random.default_rng(3).normal(scale=0.05, size=ethanol.positions.shape)
    evaluator = Evaluator(Level(calculator="xtb", hessian="reference"))
    runs = {
        start: run_opt(ethanol, evaluator, OptSettings(hessian_recalc=None, hessian_init=start), tmp_path / start)
        for start in ("calc", "guess")
    }
    assert runs["calc"].converged and runs["guess"].converged
    assert runs["calc"].n_hessian_evaluations == 1 and runs["guess"].n_hessian_evaluations == 0
    assert runs["calc"].energy_ev == pytest.approx(runs["guess"].energy_ev, abs=2e-3)
    with pytest.raises(ValueError, match="hessian_init"):
        OptSettings(hessian_init="identity")


def test_hip_optimize_and_freq_of_a_minimum(tmp_path):
    """Physics the shipped model gets right: water relaxes to a minimum with xTB-like bonds and modes."""
    from ase.build import molecule
    from ase.io import write

    water = molecule("H2O")
    water.positions[1] += [0.1, 0.0, 0.05]
    write(tmp_path / "water.xyz", water)
    result = CliRunner().invoke(main, ["optimize", str(tmp_path / "water.xyz"), "--out", str(tmp_path / "opt")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "opt" / "result.json").read_text())
    assert saved["optimization"]["converged"]
    assert saved["frequencies"]["n_imaginary"] == 0
    relaxed = read(tmp_path / "opt" / "optimized.xyz")
    assert relaxed.get_distance(0, 1) == pytest.approx(0.96, abs=0.05)
    freq = CliRunner().invoke(main, ["freq", str(tmp_path / "opt" / "optimized.xyz"), "--json"])
    assert freq.exit_code == 0, freq.output
    modes = json.loads(freq.output)["frequencies_cm1"]
    assert len(modes) == 3
    assert 1300 < modes[0] < 1900 and 3300 < modes[2] < 4200  # bend, OH stretches (xTB: 1540, 3640/3650)


def test_auto_falls_back_to_pysisyphus_when_sella_fails(tmp_path, monkeypatch):
    """Make the Sella route's path stage fail: ``auto`` must still find the TS on the pysisyphus route and
    report both attempts, in the order of ``AUTO_ORDER``."""
    from aiida_hip.pipeline import routes
    from aiida_hip.pipeline.path import PathResult

    assert AUTO_ORDER == ("sella", "pysisyphus")
    monkeypatch.setattr(routes, "geodesic_guess", lambda *args, **kwargs: PathResult(False, False, False, 0, "failed"))
    folder = REACTIONS / "ch3nc_ch3cn"  # not HCN -> HNC: the pysisyphus route's unconverged CI-NEB path there
    # leads RS-P-RFO to the right TS or to a 11 eV one depending on the last digits of the ends
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    result = ts_search(r, p, tmp_path, Level(calculator="xtb", hessian="reference"), TSSearchSettings(route="auto"))
    assert result.status == "success" and result.route == "pysisyphus"
    tried = [(a["attempt"], a["status"] or "skipped") for a in result.attempts]
    assert tried[0] == ("sella:highest:level", "path_failed")
    assert tried[-1] == ("pysisyphus:highest:level", "success")
    # the exact level's Hessian-free attempt on the same failed path is skipped, with the reason
    skipped = {a["attempt"]: a["reason"] for a in result.attempts if a.get("skipped")}
    assert "no TS guess in attempt 1" in skipped["sella:highest:none"]
    assert result.stages["attempts"] == result.attempts
    assert aligned_rmsd(result.ts.positions, read(folder / "ts_reference.xyz").positions) < 0.05


def test_a_calculator_failure_ends_the_route_not_the_search(tmp_path, monkeypatch):
    """An SCF that fails at a geometry the Sella route reached: ``auto`` records the error with its stage and
    goes on to the pysisyphus route; the result (and result.json) are written either way."""
    from aiida_hip.chem.reference import ReferenceError
    from aiida_hip.pipeline import routes

    def scf_fails(*args, **kwargs):
        raise ReferenceError("GFN2-xTB failed for molecule: SCF not converged in 250 cycles")

    monkeypatch.setattr(routes, "run_sella_tsopt", scf_fails)
    folder = REACTIONS / "ch3nc_ch3cn"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    result = ts_search(r, p, tmp_path, Level(calculator="xtb", hessian="reference"), TSSearchSettings(route="auto"))
    ran = [a for a in result.attempts if not a.get("skipped")]
    first, last = ran[0], ran[-1]
    assert first["route"] == "sella" and first["status"] == "error"
    assert first["message"].startswith("tsopt: GFN2-xTB failed") and last["route"] == "pysisyphus"
    assert json.loads((tmp_path / "result.json").read_text())["status"] == result.status


def test_two_level_search_ends_at_the_reference_ts(tmp_path):
    """HIP explores, xTB confirms: the refined TS is the xTB reference TS, and the only xTB Hessian of the
    whole search (no thermochemistry here) is the one that judges it."""
    folder = REACTIONS / "ch3nc_ch3cn"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    settings = TSSearchSettings(route="sella", refine="xtb", guess_level="hip", temperature=None)
    result = ts_search(r, p, tmp_path, Level(), settings)
    assert result.status == "success", result.message
    assert aligned_rmsd(result.ts.positions, read(folder / "ts_reference.xyz").positions) < 0.05
    assert result.reference_cost["hessians"] == 1 and result.reference_cost["gradients"] > 0
    assert result.stages["freq_sella"]["hessian_source"] == "reference"
    feed = result.stages["tsopt_sella"]["hessian_feed"]
    assert feed["approximate"] and feed["n_hessians"] >= 1  # HIP Hessians, conditioned, on the xTB surface
    assert (tmp_path / "ts_hip.xyz").is_file() and result.hip_ts_rmsd_a is not None
    assert result.refine_level["calculator"] == "xtb" and result.level["calculator"] == "hip"


@pytest.mark.slow
def test_two_level_search_refined_at_dft(tmp_path):
    """``--refine dft``: HIP Hessians on the B3LYP/6-31G* surface (PySCF, the DFT check's settings); one DFT
    Hessian judges the TS, and the IRC at that level connects HCN and HNC. About 2-4 minutes on one core."""
    pytest.importorskip("pyscf")
    folder = REACTIONS / "hcn_hnc"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    settings = TSSearchSettings(route="sella", refine="dft", temperature=None)
    result = ts_search(r, p, tmp_path, Level(), settings)
    assert result.status == "success", result.message
    assert result.refine_level["calculator"] == "dft" and result.reference_cost["hessians"] == 1
    assert result.stages["freq_sella"]["hessian_source"] == "reference"
    assert -1400 < result.imaginary_frequency_cm1 < -900  # the H shift's mode (-1148 cm-1 measured)


def test_refine_bad_input_is_a_clear_error(tmp_path, monkeypatch):
    """An unknown refinement level, and DFT without PySCF: a message and exit status 2, no traceback."""
    import importlib.util

    folder = REACTIONS / "hcn_hnc"
    args = ["ts-search", str(folder / "reactant.xyz"), str(folder / "product.xyz"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--refine", "mp2"])
    assert result.exit_code == 2 and "mp2" in result.output and "Traceback" not in result.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyscf" else real(name, *a))
    result = CliRunner().invoke(main, [*args, "--refine", "dft"])
    assert result.exit_code == 2 and "PySCF" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "result.json").exists()  # refused before any work
    with pytest.raises(ValueError, match="refine must be one of"):
        TSSearchSettings(refine="mp2")


def test_invalid_route_is_a_clear_error():
    with pytest.raises(ValueError, match="route must be"):
        TSSearchSettings(route="dimer")


def test_relative_output_folder_stays_where_asked(tmp_path, monkeypatch):
    """Stages chdir into their folders: a relative --out must not nest inside them."""
    monkeypatch.chdir(tmp_path)
    folder = REACTIONS / "hcn_hnc"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    result = ts_search(r, p, "out", Level(calculator="xtb", hessian="reference"), TSSearchSettings(route="sella"))
    assert result.status == "success"
    assert (tmp_path / "out" / "03_tsopt_sella" / "sella.log").is_file()
    assert (tmp_path / "out" / "result.json").is_file()
