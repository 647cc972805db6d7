"""Committed data shards: packed from a raw generator file, hash-checked, and loud when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from aiida_hip.dataset.shards import (
    MANIFEST,
    data_hash,
    done_ids,
    load_shards,
    read_manifest,
    sha256_of,
    summary,
    verify,
    write_shard,
)
from aiida_hip.hip.data import DatasetError, load_samples

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A raw generator file (full float Hessians, as ``generate._write`` leaves them): the committed
    sample's reactions plus one skipped reaction (attributes only)."""
    path = tmp_path_factory.mktemp("raw") / "generate.h5"
    with h5py.File(SAMPLE, "r") as src, h5py.File(path, "w") as dst:
        dst.attrs["settings"] = src.attrs["settings"]
        out = dst.create_group("reactions")
        for rid in src["reactions"]:
            src.copy(src["reactions"][rid], out, name=rid)
        skipped = out.create_group("rxn_00000000000000ff")
        skipped.attrs.update({"status": "skipped", "reason": "NEB failed at xTB", "split": "train"})
    return path


@pytest.fixture
def shards(raw, tmp_path):
    root = tmp_path / "shards"
    with h5py.File(raw, "r") as h5:
        ids = sorted(h5["reactions"])
    first = write_shard(raw, root, ids[:4])
    second = write_shard(raw, root, ids)  # only the rest: packed ids are never packed twice
    return root, ids, first, second


def test_shards_round_trip_with_matching_hashes(raw, shards):
    root, ids, first, second = shards
    assert first["file"] == "shard_0000.h5" and second["file"] == "shard_0001.h5"
    assert first["ids"] == ids[:4] and second["ids"] == ids[4:]
    assert first["ok"] + second["ok"] == 10 and first["skipped"] + second["skipped"] == 1
    manifest = verify(root)
    assert [s["sha256"] for s in manifest["shards"]] == [sha256_of(root / s["file"]) for s in manifest["shards"]]
    assert done_ids(manifest) == set(ids)
    assert write_shard(raw, root, ids) is None
    assert summary(root)["geometries"] == first["geometries"] + second["geometries"]
    # The data hash is the ordered shard hashes: the same shards give the same hash, another order another.
    assert data_hash(manifest) == data_hash(json.loads((root / MANIFEST).read_text()))
    assert data_hash({"shards": manifest["shards"][::-1]}) != data_hash(manifest)
    for split in ("train", "val", "test"):
        packed = sorted(load_shards(root, split), key=lambda s: (s.reaction, s.energy))
        reference = sorted(load_samples(raw, split), key=lambda s: (s.reaction, s.energy))
        assert len(packed) == len(reference) > 0
        for a, b in zip(packed, reference, strict=True):
            assert a.reaction == b.reaction and a.kind == b.kind and a.energy == b.energy
            np.testing.assert_array_equal(a.numbers, b.numbers)
            np.testing.assert_allclose(a.positions, b.positions, atol=1e-5)
            np.testing.assert_allclose(a.forces, b.forces, atol=1e-6)
            # float16 upper triangle: about 3 significant digits, symmetric on unpacking.
            np.testing.assert_allclose(a.hessian, b.hessian, rtol=1e-3, atol=2e-3)
            np.testing.assert_array_equal(a.hessian, a.hessian.T)


def test_corrupted_shard_is_refused(shards):
    root = shards[0]
    path = root / "shard_0001.h5"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match=r"shard_0001\.h5 is corrupted or truncated: SHA-256"):
        verify(root)
    with pytest.raises(DatasetError, match="corrupted or truncated"):
        load_shards(root, "train")


def test_truncated_shard_is_refused(shards):
    root = shards[0]
    path = root / "shard_0000.h5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"shard_0000\.h5 is corrupted or truncated"):
        load_shards(root, "val")


def test_missing_shard_and_bad_manifest_are_refused(shards):
    root = shards[0]
    (root / "shard_0001.h5").unlink()
    with pytest.raises(DatasetError, match=r"shard_0001\.h5 listed in manifest.json is missing"):
        verify(root)
    manifest = read_manifest(root)
    manifest["generator_version"] = 0
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="generator version 0"):
        verify(root)
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_manifest(root)


def test_empty_campaign_has_an_empty_manifest(tmp_path):
    manifest = verify(tmp_path / "nothing")
    assert manifest["shards"] == [] and load_shards(tmp_path / "nothing") == []
    assert summary(tmp_path / "nothing")["reactions_ok"] == 0


def test_card_describes_the_shards_and_their_hash(shards):
    from aiida_hip.dataset.shards import data_hash, read_manifest, write_card

    root = shards[0]
    text = write_card(root).read_text()
    assert data_hash(read_manifest(root)) in text
    assert "reactions kept:" in text and "reactions skipped: 1" in text
