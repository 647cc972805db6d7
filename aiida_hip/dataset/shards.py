"""The committed training data: packed HDF5 shards listed with their SHA-256 in ``manifest.json``.

Generation is hours of xTB on two cores, so the data must outlive a session: the campaign labels
reactions a few at a time and packs each finished group into a small shard (float16 upper-triangle
Hessians) that is committed. Skipped reactions are kept in the shards too (attributes only), so no
session tries them again. Readers check every shard's hash before they load it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from ..common.files import sha256_of
from ..hip.data import DatasetError, Sample, load_samples
from .card import dataset_card

MANIFEST = "manifest.json"
# Raise when the generator's output changes for the same settings (and say so in the card).
GENERATOR_VERSION = 1


def read_manifest(root: Path) -> dict:
    """The manifest under ``root``, or an empty one for a new campaign."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        from .generate import GenerationSettings  # RDKit: only a new campaign needs the settings (not the GPU)

        return {"generator_version": GENERATOR_VERSION, "settings": asdict(GenerationSettings()), "shards": []}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def done_ids(manifest: dict) -> set[str]:
    return {rid for shard in manifest["shards"] for rid in shard["ids"]}


def write_shard(source: Path, root: Path, ids: list[str]) -> dict | None:
    """Pack reactions ``ids`` of the raw generator file ``source`` into the next shard under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    ids = sorted(set(ids) - done_ids(manifest))
    if not ids:
        return None
    name = f"shard_{len(manifest['shards']):04d}.h5"
    tmp = root / (name + ".tmp")
    counts = {"ok": 0, "skipped": 0, "geometries": 0}
    with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
        dst.attrs["settings"] = src.attrs["settings"]
        dst.attrs["packed"] = "upper-triangle Hessians in float16"
        out = dst.create_group("reactions")
        for rid in ids:
            g, h = src["reactions"][rid], out.create_group(rid)
            h.attrs.update(dict(g.attrs))
            if g.attrs.get("status") != "ok":
                counts["skipped"] += 1
                continue
            rows, cols = np.triu_indices(3 * len(g["numbers"]))
            for key in ("numbers", "kind", "energy"):
                h.create_dataset(key, data=g[key][()])
            h.create_dataset("positions", data=g["positions"][()].astype(np.float32))
            h.create_dataset("forces", data=g["forces"][()].astype(np.float32))
            triu = g["hessian"][()][:, rows, cols].astype(np.float16)
            h.create_dataset("hessian_triu", data=triu, compression="gzip", compression_opts=6, shuffle=True)
            counts["ok"] += 1
            counts["geometries"] += len(g["energy"])
    os.replace(tmp, root / name)
    entry = {"file": name, "sha256": sha256_of(root / name), "ids": ids, **counts}
    manifest["shards"].append(entry)
    _write_json_atomic(root / MANIFEST, manifest)
    return entry


def verify(root: Path) -> dict:
    """The manifest, after checking that every shard exists and matches its SHA-256."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError(
            f"{root / MANIFEST} was written by generator version {manifest.get('generator_version')}, "
            f"this code is version {GENERATOR_VERSION}: regenerate the shards"
        )
    check_listed(root, manifest["shards"], "shard")
    return manifest


def check_listed(root: Path, entries: list[dict], what: str, manifest: str = MANIFEST) -> None:
    """Every listed ``{"file", "sha256"}`` exists under ``root`` and matches its hash; a missing, truncated or
    corrupted one is a :class:`DatasetError` that names it."""
    for entry in entries:
        path = Path(root) / entry["file"]
        if not path.is_file():
            raise DatasetError(f"{what} {path} listed in {manifest} is missing")
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise DatasetError(
                f"{what} {path} is corrupted or truncated: SHA-256 {digest[:12]}... does not match "
                f"{entry['sha256'][:12]}... in {manifest}"
            )


def data_hash(manifest: dict) -> str:
    """One hash for the whole data set: the ordered shard hashes."""
    return hashlib.sha256("".join(s["sha256"] for s in manifest["shards"]).encode()).hexdigest()


def load_shards(root: Path, split: str | None = None, kinds=None) -> list[Sample]:
    """Every geometry of ``split`` in the committed shards (hashes checked first)."""
    root = Path(root)
    manifest = verify(root)
    samples: list[Sample] = []
    for shard in manifest["shards"]:
        if shard["ok"]:
            samples += load_samples(root / shard["file"], split, kinds)
    return samples


def summary(root: Path) -> dict:
    manifest = read_manifest(root)
    shards = manifest["shards"]
    return {
        "shards": len(shards),
        "reactions_ok": sum(s["ok"] for s in shards),
        "reactions_skipped": sum(s["skipped"] for s in shards),
        "geometries": sum(s["geometries"] for s in shards),
        "bytes": sum((Path(root) / s["file"]).stat().st_size for s in shards if (Path(root) / s["file"]).is_file()),
    }


def write_card(root: Path) -> Path:
    """``CARD.md`` beside the manifest: what the shards hold and the SHA-256 that identifies the data set."""
    root = Path(root)
    manifest = verify(root)
    files = [root / s["file"] for s in manifest["shards"]]
    notes = (
        "",
        f"Shards: {len(files)} in `{root}` (each listed with its SHA-256 in `{MANIFEST}`, checked on every load); "
        f"data set SHA-256 (of the ordered shard hashes): `{data_hash(manifest)}`; generator version "
        f"{manifest.get('generator_version')}.",
        "Packed: positions and forces float32, Hessians as float16 upper triangles (relative error <= 4.9e-4, far "
        "below the finite-difference noise). The campaign adds shards (`bash scripts/train_campaign.sh --minutes N`); "
        "regeneration is deterministic per reaction (seeded by its id), so the same generator gives the same shards.",
    )
    path = root / "CARD.md"
    path.write_text(dataset_card(files, title="# Dataset card: the committed campaign shards", notes=notes))
    return path
