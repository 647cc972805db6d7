"""Energy+force data: deterministic sampling, labels equal to a direct xTB call, resumable packing with
the same file hashes, hash-checked loading of Hessian-free samples."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from aiida_hip.dataset.ef_samples import (
    MANIFEST,
    EFSettings,
    acceptable,
    allocate,
    ef_candidates,
    generate_ef,
    load_ef_samples,
    main,
    read_reaction,
    source_reactions,
    verify_ef,
    write_ef_card,
)
from aiida_hip.dataset.shards import sha256_of, write_shard
from aiida_hip.hip.data import DatasetError

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"
SMALL = EFSettings(per_reaction=8, reactions_per_file=2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Hessian shards of three reactions of the committed sample (two train, one val)."""
    root = tmp_path_factory.mktemp("shards")
    with h5py.File(SAMPLE, "r") as h5:
        ids = ["rxn_01753f7438e505b6", "rxn_0553d8305f563671", "rxn_04edaee013f53e65"]
        assert all(h5["reactions"][rid].attrs["status"] == "ok" for rid in ids)
    write_shard(SAMPLE, root, ids)
    return root


@pytest.fixture(scope="module")
def ef(shards, tmp_path_factory):
    """An uninterrupted run through the entry point: 3 reactions x 8 geometries, 2 reactions a file."""
    out = tmp_path_factory.mktemp("ef")
    args = ["--root", str(shards), "--out", str(out), "--per-reaction", "8", "--reactions-per-file", "2"]
    summary = main([*args, "--no-progress"])
    assert summary["reactions"] == 3 and summary["remaining"] == 0 and summary["staged"] == 0
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in sorted(root.glob("ef_*.h5"))}


def test_sampling_is_deterministic_and_physical(shards):
    settings = EFSettings(per_reaction=60)
    (f0, rid0), (f1, rid1) = source_reactions(shards)[:2]
    record = read_reaction(shards, f0, rid0)
    kinds, pos = ef_candidates(record, settings)
    kinds2, pos2 = ef_candidates(read_reaction(shards, f0, rid0), settings)
    assert kinds == kinds2 and np.array_equal(pos, pos2)
    assert 50 <= len(kinds) <= 60 and pos.shape == (len(kinds), len(record["numbers"]), 3)
    assert np.array_equal(pos, pos.astype(np.float32))  # what is labelled is what is stored
    assert np.array_equal(pos * 1024, np.round(pos * 1024))  # on the 2^-10 A grid
    assert {"thermal_reactant_300K", "thermal_ts_2000K", "thermal_product_600K", "neb_perturbed_1000K"} <= set(kinds)
    assert all(acceptable(record["numbers"], p, p, settings) for p in pos)
    other = ef_candidates(read_reaction(shards, f1, rid1), settings)[1]
    assert other.shape[1] != pos.shape[1] or not np.allclose(other[0], pos[0])
    assert allocate(10, [1, 1, 2]) == [3, 2, 5] and sum(allocate(7, [1] * 4)) == 7


def test_clashes_are_rejected(shards):
    record = read_reaction(shards, *source_reactions(shards)[0])
    pos = record["positions"][0]
    clash = pos.copy()
    clash[1] = clash[0] + [0.5, 0.0, 0.0]
    assert not acceptable(record["numbers"], clash, pos, SMALL)
    far = pos.copy()
    far[0] += [8.0, 0.0, 0.0]  # one atom torn off: a new fragment
    assert not acceptable(record["numbers"], far, pos, SMALL)


def test_labels_match_a_direct_xtb_call(ef):
    from aiida_hip.chem.reference import XTBReference

    manifest = verify_ef(ef)
    samples = load_ef_samples(ef)
    assert len(samples) == sum(e["geometries"] for e in manifest["files"]) > 20
    s = samples[5]
    ref = XTBReference(workers=1).predict(s.numbers, s.positions, hessian=None)
    # This process may run xTB multi-threaded: equal to the SCF convergence (1e-6 Hartree = 3e-5 eV).
    assert s.energy == pytest.approx(ref["energy"], abs=1e-4)  # eV
    f16 = max(e["f16_max_error"] for e in manifest["files"])
    assert 0 < f16 < 0.02
    np.testing.assert_allclose(s.forces, ref["forces"], rtol=0, atol=f16 + 1e-4)  # eV/A, float16 storage
    assert abs(s.energy) > 100.0  # total GFN2 energies in eV, not Hartree


def test_loader_splits_and_no_hessians(ef, shards):
    with h5py.File(SAMPLE, "r") as h5:
        splits = {rid: h5["reactions"][rid].attrs["split"] for _, rid in source_reactions(shards)}
    every = load_ef_samples(ef)
    by_split = {split: load_ef_samples(ef, split) for split in ("train", "val", "test")}
    assert len(by_split["train"]) + len(by_split["val"]) == len(every) and by_split["test"] == []
    for split, samples in by_split.items():
        assert all(splits[s.reaction] == split and s.hessian is None for s in samples)
    s = by_split["val"][0]
    assert s.numbers.dtype == np.int64 and s.positions.shape == s.forces.shape == (s.n_atoms, 3)
    with h5py.File(ef / "ef_0000.h5", "r") as h5:
        g = next(iter(h5["reactions"].values()))
        assert g["forces"].dtype == np.float16 and g["positions"].dtype == np.float32
        assert g["energy"].dtype == np.float64 and g["positions"].compression == "gzip"
        assert {"split", "reactant_smiles", "product_smiles", "source_shard"} <= set(g.attrs)


def test_resumed_run_writes_the_same_files(ef, shards, tmp_path):
    out = tmp_path / "resumed"
    first = generate_ef(shards, out, SMALL, progress=False, stop_after=1)
    assert first["reactions"] == 1 and first["files"] == 0 and first["staged"] == 1
    second = generate_ef(shards, out, SMALL, progress=False, stop_after=1)
    assert second["reactions"] == 1 and second["files"] == 1 and second["staged"] == 0
    third = generate_ef(shards, out, SMALL, progress=False)
    assert third["reactions"] == 1 and third["files"] == 1 and third["remaining"] == 0
    again = generate_ef(shards, out, SMALL, progress=False)
    assert again["reactions"] == 0 and again["files"] == 0  # packed reactions are skipped
    assert _hashes(out) == _hashes(ef) and len(_hashes(ef)) == 2
    assert json.loads((out / MANIFEST).read_text()) == json.loads((ef / MANIFEST).read_text())
    assert (out / ".gitignore").read_text().startswith(".partial/")
    with pytest.raises(DatasetError, match="generated with settings"):
        generate_ef(shards, out, EFSettings(per_reaction=9, reactions_per_file=2), progress=False)


def test_deadline_stops_before_the_next_reaction(shards, tmp_path):
    out = tmp_path / "late"
    summary = generate_ef(shards, out, SMALL, minutes=0.0, progress=False)
    assert summary["reactions"] == 0 and summary["remaining"] == 3 and summary["files"] == 0
    assert load_ef_samples(out) == []  # the manifest (settings pinned) exists, no files yet
    with pytest.raises(DatasetError, match="generated with settings"):  # nothing mixes with other settings
        generate_ef(shards, out, EFSettings(per_reaction=4), progress=False)


def test_two_workers_give_the_same_labels_bit_for_bit(ef, shards, tmp_path):
    out = tmp_path / "pool"
    generate_ef(shards, out, SMALL, workers=2, max_reactions=2, progress=False)
    pool = sorted(load_ef_samples(out), key=lambda s: (s.reaction, s.kind, s.energy))
    ids = {s.reaction for s in pool}
    serial = sorted((s for s in load_ef_samples(ef) if s.reaction in ids), key=lambda s: (s.reaction, s.kind, s.energy))
    assert len(pool) == len(serial) > 0
    for a, b in zip(pool, serial, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.kind == b.kind and a.energy == b.energy
        np.testing.assert_array_equal(a.forces, b.forces)


def test_corrupted_truncated_or_missing_files_are_refused(ef, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(ef, root)
    path = root / "ef_0001.h5"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match=r"ef_0001\.h5 is corrupted or truncated: SHA-256"):
        load_ef_samples(root, "train")
    (root / "ef_0000.h5").write_bytes((ef / "ef_0000.h5").read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"ef_0000\.h5 is corrupted or truncated"):
        load_ef_samples(root)
    (root / "ef_0000.h5").unlink()
    with pytest.raises(DatasetError, match=r"not here \(ef_0000\.h5, \.\.\.\).*archive restore"):
        verify_ef(root)
    (root / MANIFEST).write_text("{broken")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_ef_samples(root)
    with pytest.raises(DatasetError, match=r"manifest\.json is missing"):
        load_ef_samples(tmp_path / "nothing")


def test_card_counts_kinds_splits_and_float16_error(ef):
    text = write_ef_card(ef).read_text()
    manifest = verify_ef(ef)
    assert f"geometries: {sum(e['geometries'] for e in manifest['files'])} (" in text
    assert "float16 force rounding: max" in text and "thermal_ts_" in text and "| kind | geometries |" in text
    assert "python -m aiida_hip.dataset.ef_samples" in text and "bytes per geometry" in text


def test_the_campaign_trains_the_backbone_on_them(ef, shards):
    """The campaign's data: the shards' hash alone without E+F files (older states resume), both with them,
    the E+F file hashes as parts of their own stream, and E+F training geometries without Hessians."""
    from aiida_hip.dataset.campaign import training_data
    from aiida_hip.hip.campaign import EF_PART

    train, val, none, digest, parts = training_data(shards, shards / "no-ef-here")
    assert none == [] and not any(p.startswith(EF_PART) for p in parts) and train and val
    train2, _, ef_train, digest2, parts2 = training_data(shards, ef)
    assert len(train2) == len(train) and digest2 != digest and parts2[: len(parts)] == parts
    assert [p[len(EF_PART) :] for p in parts2[len(parts) :]] == [f["sha256"] for f in verify_ef(ef)["files"]]
    assert ef_train and all(s.hessian is None for s in ef_train)
