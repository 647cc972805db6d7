"""``aiida-hip evaluate``: the model-quality table against a baseline checkpoint, one run, same geometries."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT, PREVIOUS_NAME

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"


def test_shipped_checkpoint_against_the_previous_one(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--data", str(SAMPLE), "--split", "val", "--max-samples", "6", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    comparison = json.loads(out.with_suffix(".json").read_text())["comparison"]
    names = list(comparison)
    assert names == [f"{DEFAULT_CHECKPOINT.name} (evaluated)", f"{PREVIOUS_NAME} (baseline)"]
    for metrics in comparison.values():
        assert metrics["n_samples"] == 6 and 0 < metrics["force_mae"] < 5 and 0 < metrics["hessian_mae"] < 5
    assert comparison[names[0]]["hessian_mae"] != comparison[names[1]]["hessian_mae"]
    table = out.with_suffix(".md").read_text()
    assert "| target | <= 0.06 | <= 0.15 | >= 0.75 |" in table and "(baseline)" in table


def test_bad_baseline_is_a_clear_error(tmp_path):
    args = ["evaluate", "--data", str(SAMPLE), "--baseline", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "baseline checkpoint not found" in result.output
    assert "Traceback" not in result.output
