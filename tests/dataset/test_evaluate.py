"""Evaluation table on the committed sample: every column, for HIP and the autograd Hessian."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aiida_hip.dataset.evaluate import COLUMNS, compare, evaluate, markdown, write
from aiida_hip.hip import HIPConfig, HIPModel
from aiida_hip.hip.data import load_samples

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"


def test_compare_is_exact_for_identical_hessians():
    s = load_samples(SAMPLE, "test")[0]
    m = compare(s.numbers, s.positions, s.hessian, s.hessian)
    assert m["hessian_mae"] == 0 and m["eigenvalue_mae"] < 1e-12 and m["lambda1_mae"] < 1e-12
    assert abs(m["cossim_v1"] - 1) < 1e-9


def test_evaluation_table_has_every_column(tmp_path):
    torch.manual_seed(0)
    model = HIPModel(HIPConfig(channels=8, num_layers=1, hessian_channels=4, radial_hidden=16))
    samples = load_samples(SAMPLE, "test")
    result = evaluate(model, samples, max_samples=4)
    for mode in ("predicted", "autograd"):
        assert set(COLUMNS) <= set(result["table"][mode])
        assert all(np.isfinite(v) for v in result["table"][mode].values())
    write(result, tmp_path / "eval", "sample")
    text = (tmp_path / "eval.md").read_text()
    assert "hessian_mae" in text and "| predicted |" in text
    assert markdown(result, "t").count("|") > 10
