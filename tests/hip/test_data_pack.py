"""The packed dataset (what travels to a GPU machine) reads back as the original, within float16."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiida_hip.hip.data import load_samples, pack_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"


def test_pack_round_trip(tmp_path):
    counts = pack_dataset(SAMPLE, tmp_path / "packed.h5")
    original, packed = load_samples(SAMPLE), load_samples(tmp_path / "packed.h5")
    assert counts["geometries"] == len(original) == len(packed)
    assert (tmp_path / "packed.h5").stat().st_size < 0.5 * SAMPLE.stat().st_size
    for a, b in zip(original, packed, strict=True):
        assert a.reaction == b.reaction and a.kind == b.kind
        np.testing.assert_array_equal(a.numbers, b.numbers)
        assert a.energy == b.energy
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-5)
        np.testing.assert_allclose(b.hessian, b.hessian.T)
        # float16 keeps ~3 significant digits: relative error <= 2^-11 plus a tiny absolute floor
        assert np.all(np.abs(b.hessian - a.hessian) <= 5e-4 * np.abs(a.hessian) + 1e-4)
    assert {s.reaction for s in load_samples(tmp_path / "packed.h5", "val")} == {
        s.reaction for s in load_samples(SAMPLE, "val")
    }
