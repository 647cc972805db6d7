"""The search's attempts, the QRC check and RS-P-RFO on Hessians with many soft modes (real xTB runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiida_hip.common.attempts import PLANS, Attempt, AttemptError, attempt_plan, hessian_use, skip_reason
from aiida_hip.common.level import Level as L0Level
from aiida_hip.common.types import Outcome, Route
from aiida_hip.pipeline import Level, TSSearchSettings, read_reaction, ts_search

REACTIONS = Path(__file__).resolve().parents[1] / "data" / "reactions"


def test_attempt_plans_parse_and_skip_repeats():
    assert [a.key for a in attempt_plan("auto")] == list(PLANS[Route.AUTO])
    assert {a.route for a in attempt_plan("sella")} == {"sella"}
    with pytest.raises(AttemptError, match="route:guess:hessian"):
        Attempt.parse("sella:highest")
    with pytest.raises(AttemptError, match="guess must be one of"):
        Attempt.parse("sella:lowest:none")
    with pytest.raises(AttemptError, match="route sella or pysisyphus"):
        Attempt.parse("auto:highest:none")
    none = Attempt("sella", "highest", "none")
    rejected = [{"index": 1, "route": "sella", "guess": "highest", "hessian": "level", "hessian_free": "probe"}]
    assert "already Hessian-free" in skip_reason(none, rejected, ends_moved=True)
    used = [{"index": 1, "route": "sella", "guess": "highest", "hessian": "level", "hessian_free": False}]
    assert skip_reason(none, used, ends_moved=True) is None
    assert "given ends are the minimised" in skip_reason(Attempt("sella", "given", "none"), [], ends_moved=False)
    exact = [{"index": 1, "route": "sella", "guess": "highest", "hessian": "level", "hessian_exact": True}]
    assert "exact Hessians" in skip_reason(Attempt("sella", "highest", "exact"), exact, ends_moved=True)
    failed = [{"index": 1, "route": "sella", "guess": "second", "hessian": "level", "status": Outcome.PATH_FAILED}]
    assert "no TS guess" in skip_reason(Attempt("sella", "second", "none"), failed, ends_moved=True)


def test_hessian_use_names_why_no_model_hessian_steered():
    hip = L0Level(calculator="xtb", hessian="predicted")
    assert hessian_use(hip, {"n_hessians": 1, "guard_tripped_at": 0})["hessian_free"].startswith("the guard")
    assert hessian_use(hip, None)["hessian_free"].startswith("the route starts Hessian-free")
    assert hessian_use(hip, {"n_hessians": 5, "guard_tripped_at": 3})["model_hessians_used"]
    assert hessian_use(L0Level(calculator="xtb", hessian="reference"), None)["hessian_exact"]
    assert hessian_use(L0Level(calculator="xtb", hessian="none"), None)["hessian_free"]


def test_settings_refuse_a_bad_plan():
    with pytest.raises(ValueError, match="attempt hessian"):
        TSSearchSettings(attempts=("sella:highest:sometimes",))
    with pytest.raises(ValueError, match="verify must be"):
        TSSearchSettings(verify="maybe")
    with pytest.raises(ValueError, match="max_attempts"):
        TSSearchSettings(max_attempts=0)


def test_qrc_agrees_with_the_irc_and_costs_less(tmp_path):
    """HCN -> HNC at xTB: both verifications connect the intended ends; the QRC spends fewer gradients."""
    r, p = read_reaction(REACTIONS / "hcn_hnc" / "reactant.xyz", REACTIONS / "hcn_hnc" / "product.xyz")
    level = Level(calculator="xtb", hessian="none")
    results = {}
    for verify in ("irc", "qrc"):
        settings = TSSearchSettings(route="sella", temperature=None, verify=verify)
        results[verify] = ts_search(r, p, tmp_path / verify, level, settings)
        assert results[verify].status == "success" and results[verify].irc_intended, results[verify].message
    assert results["qrc"].stages["irc_sella"]["method"] == "qrc"
    assert results["qrc"].stages["irc_sella"]["profile"] is None  # no reaction profile from a QRC
    assert results["qrc"].reference_cost["gradients"] < results["irc"].reference_cost["gradients"]


def test_rsprfo_accepts_a_hessian_with_more_than_six_soft_modes(tmp_path, monkeypatch):
    """The Hessian shape that stopped RS-P-RFO ('Expected at most 6 small eigenvalues in cartesian hessian
    but found 10!'): a guess Hessian with four vibrational eigenvalues at zero. pysisyphus's own filter
    asserts on it; ours drops the six rigid-body ones and the route runs to an outcome."""
    from pysisyphus.optimizers.HessianOptimizer import HessianOptimizer

    from aiida_hip.pipeline import tsopt as tsopt_module
    from aiida_hip.pipeline.common import filter_rigid_eigvals

    values = np.concatenate([np.zeros(10), np.linspace(0.1, 1.0, 8)])

    class Fake:
        small_eigval_thresh = 1e-8

        def log(self, message):
            pass

    with pytest.raises(AssertionError, match="found 10"):
        HessianOptimizer.filter_small_eigvals(Fake(), values, np.eye(18))
    kept, vectors = filter_rigid_eigvals(Fake(), values, np.eye(18))
    assert len(kept) == 12 and vectors.shape == (18, 12)

    original = tsopt_module.ts_guess_hessian

    def soft_guess(geom, tangent, curvature):
        hessian = original(geom, tangent, curvature)
        w, v = np.linalg.eigh(hessian)
        w[np.argsort(np.abs(w))[6:10]] = 0.0  # four more (near-)zero modes
        return (v * w) @ v.T

    monkeypatch.setattr(tsopt_module, "ts_guess_hessian", soft_guess)
    folder = REACTIONS / "ch3nc_ch3cn"
    r, p = read_reaction(folder / "reactant.xyz", folder / "product.xyz")
    settings = TSSearchSettings(route="pysisyphus", temperature=None, attempts=("pysisyphus:highest:none",))
    result = ts_search(r, p, tmp_path, Level(calculator="xtb", hessian="none"), settings)
    tsopt = result.stages["tsopt"]
    assert "AssertionError" not in tsopt["message"], tsopt["message"]
    assert result.status in {o.value for o in Outcome}


def test_the_budget_stops_new_attempts_at_a_multiple_of_the_first():
    from aiida_hip.common.attempts import over_budget

    done = [{"index": 1, "reference_gradient_equivalents": 300}, {"index": 2, "skipped": True}]
    assert over_budget(done, 4.0) is None
    done.append({"index": 3, "reference_gradient_equivalents": 900})
    assert over_budget(done, 4.0).startswith("budget: the attempts spent 1200")
    assert over_budget(done, None) is None
    assert over_budget([{"index": 1, "reference_gradient_equivalents": 0}], 1.0) is None  # pure HIP: no cost


def test_an_exact_attempt_is_capped_by_what_is_left_of_the_budget():
    from aiida_hip.common.attempts import exact_step_cap

    done = [{"index": 1, "reference_gradient_equivalents": 300}, {"index": 2, "reference_gradient_equivalents": 100}]
    assert exact_step_cap(done, 3.0, n_atoms=10) == (900 - 400) // 62
    assert exact_step_cap(done, 1.0, n_atoms=10) == 3  # spent already: a few steps, never none
    assert exact_step_cap(done, None, n_atoms=10) is None
