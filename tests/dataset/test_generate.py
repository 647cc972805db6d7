"""One real reaction through the generator: xTB endpoints, CI-NEB, samples, labels, HDF5, resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from aiida_hip.dataset.generate import GenerationSettings, generate, process_reaction
from aiida_hip.dataset.reactions import enumerate_reactions
from aiida_hip.hip.data import DatasetError, load_samples

FAST = GenerationSettings(neb_images=5, neb_steps=60, ts_samples=2, minimum_samples=1, snapshot_every=30)


@pytest.fixture(scope="module")
def tautomerism():
    reactions = {r.product_smiles: r for r in enumerate_reactions("C=CO", np.random.default_rng(0), 500)}
    return reactions["CC=O"]  # vinyl alcohol -> acetaldehyde


def test_process_reaction_labels_geometries(tautomerism):
    res = process_reaction(tautomerism, FAST, seed=3)
    assert res["status"] == "ok", res.get("reason")
    m, n = res["positions"].shape[:2]
    assert n == 7 and m >= 5 + 2 + 2
    assert res["hessian"].shape == (m, 3 * n, 3 * n)
    assert np.allclose(res["hessian"], res["hessian"].transpose(0, 2, 1))
    assert 0.5 < res["barrier"] < 5.0  # a 1,3-H shift has a real barrier at xTB
    assert res["energy"][res["ts_index"]] == pytest.approx(res["energy"][:5].max())
    assert {"neb_image", "ts_region"} <= set(res["kinds"])


def test_generate_writes_resumable_hdf5(tmp_path):
    smi = tmp_path / "one.smi"
    smi.write_text("C=CO vinyl_alcohol\n")
    out = tmp_path / "d.h5"
    first = generate(out, FAST, workers=1, limit=2, smiles_file=smi, progress=False)
    assert first["ok"] + first["skipped"] == 2
    again = generate(out, FAST, workers=1, limit=0, smiles_file=smi, progress=False)
    assert again["already_done"] == 2
    with h5py.File(out) as h5:
        groups = list(h5["reactions"].values())
        assert all("reactant_smiles" in g.attrs and "split" in g.attrs for g in groups)
        ok = [g for g in groups if g.attrs["status"] == "ok"]
        assert all("xtb_version" in g.attrs for g in ok)
    if first["ok"]:
        samples = load_samples(out)
        assert samples and samples[0].hessian.shape == (21, 21)


def test_corrupt_dataset_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="not a readable aiida-hip HDF5 dataset"):
        load_samples(bad)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(DatasetError, match="no 'reactions' group"):
        load_samples(empty)
