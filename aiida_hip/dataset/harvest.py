"""Reference labels a batch of searches already paid for -> the hash-checked shards the campaign reads.

Every verified TS costs a reference Hessian at the TS and, with thermochemistry, one at each end; a search
throws them away after judging. Here they become training data: one shard group per reaction with its
level of theory, its units and the source of every geometry (an AiiDA node UUID or a file), so a
fine-tuned model can name the calculations it learnt from. Which side of the held-out split a reaction
lies on is a hash of its name (:func:`aiida_hip.hip.finetune.holdout_of`): a growing batch never moves a
reaction from one side to the other. This module reads folders and arrays only; the AiiDA collector
(:mod:`aiida_hip.workflows.learn`) turns nodes into :class:`Label` objects first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..common.files import sha256_of
from ..common.level import DEFAULT_LABEL_LEVEL
from ..hip.data import DatasetError, Sample
from ..hip.finetune import holdout_of
from .shards import GENERATOR_VERSION, MANIFEST, done_ids

UNITS = "positions A, energy eV, forces eV/A, hessian eV/A^2"
#: what ``role`` a harvested geometry had in its search
KINDS = ("ts", "reactant", "product", "minimum")
HOLDOUT_FRACTION = 0.25


@dataclass
class Label:
    """One reference-labelled geometry (eV, A, eV/A, eV/A^2) and where it came from."""

    reaction: str
    kind: str
    numbers: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    hessian: np.ndarray
    source: str

    def __post_init__(self) -> None:
        n = len(self.numbers)
        if self.kind not in KINDS:
            raise DatasetError(f"label kind must be one of {list(KINDS)}, got {self.kind!r}")
        if np.shape(self.positions) != (n, 3) or np.shape(self.hessian) != (3 * n, 3 * n):
            raise DatasetError(f"{self.reaction} ({self.kind}): positions or Hessian do not match {n} atoms")
        if not np.all(np.isfinite(self.hessian)):
            raise DatasetError(f"{self.reaction} ({self.kind}): the Hessian has non-finite entries")

    def sample(self) -> Sample:
        """The label as a training :class:`~aiida_hip.hip.data.Sample`."""
        numbers = np.asarray(self.numbers, dtype=np.int64)
        return Sample(numbers, self.positions, self.energy, self.forces, self.hessian, self.reaction, self.kind)


def labels_from_folder(folder: str | Path, reaction: str) -> list[Label]:
    """The reference Hessians of one ``aiida-hip ts-search`` folder (every ``freq.npz`` whose Hessian is the
    reference level's own): the TS of each attempt and, with thermochemistry, both ends."""
    labels = []
    for path in sorted(Path(folder).rglob("freq.npz")):
        info = json.loads((path.parent / "freq.json").read_text()) if (path.parent / "freq.json").is_file() else {}
        if info.get("hessian_source") != "reference":
            continue  # a model Hessian is not a label
        with np.load(path, allow_pickle=False) as data:
            if "positions" not in data.files:
                continue  # written before freq.npz kept its geometry
            role = path.parent.name if path.parent.name in ("reactant", "product") else info.get("expected", "ts")
            labels.append(
                Label(
                    reaction,
                    "minimum" if role == "minimum" else role,
                    data["numbers"],
                    data["positions"],
                    float(data["energy_ev"]),
                    data["forces"],
                    data["hessian"],
                    str(path),
                )
            )
    return labels


def folder_level(root: str | Path) -> str:
    """The level of theory of a shard folder (the campaign's own folder predates the key: GFN2-xTB)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"no {MANIFEST} under {root}: not a shard folder")
    return json.loads(path.read_text()).get("level", DEFAULT_LABEL_LEVEL)


def _manifest(root: Path, level: str, origin: dict) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        return {"generator_version": GENERATOR_VERSION, "settings": origin, "level": level, "shards": []}
    manifest = json.loads(path.read_text())
    if manifest.get("level", DEFAULT_LABEL_LEVEL) != level:
        raise DatasetError(
            f"{root} holds {manifest.get('level', DEFAULT_LABEL_LEVEL)} labels; refusing to add {level} labels "
            "(one level per shard folder)"
        )
    return manifest


def _group_name(reaction: str) -> str:
    return reaction.replace("/", "_")


def _write_group(out: h5py.Group, reaction: str, rows: list[Label], level: str, salt: str) -> str:
    """One reaction's group; returns its split."""
    g = out.create_group(_group_name(reaction))
    split = "test" if holdout_of(reaction, HOLDOUT_FRACTION, salt) else "train"
    g.attrs.update(
        {
            "status": "ok",
            "reaction": reaction,
            "split": split,
            "level_of_theory": level,
            "units": UNITS,
            "sources": json.dumps([r.source for r in rows]),
        }
    )
    g.create_dataset("numbers", data=np.asarray(rows[0].numbers, dtype=np.int8))
    g.create_dataset("positions", data=np.stack([r.positions for r in rows]).astype(np.float32))
    g.create_dataset("energy", data=np.array([r.energy for r in rows], dtype=np.float64))
    g.create_dataset("forces", data=np.stack([r.forces for r in rows]).astype(np.float32))
    g.create_dataset("hessian", data=np.stack([r.hessian for r in rows]).astype(np.float32), compression="gzip")
    g.create_dataset("kind", data=np.array([r.kind for r in rows], dtype="S16"))
    return split


def write_labels(
    labels: list[Label], root: str | Path, level: str = DEFAULT_LABEL_LEVEL, origin: dict | None = None, salt: str = ""
) -> dict | None:
    """Append the reactions of ``labels`` not yet in ``root`` as one new shard; its manifest entry, or ``None``
    when every reaction is already there. A reaction's geometries must share one atom order."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(root, level, origin or {"source": "aiida-hip harvest"})
    by_reaction: dict[str, list[Label]] = {}
    for label in labels:
        by_reaction.setdefault(label.reaction, []).append(label)
    fresh = sorted(set(by_reaction) - done_ids(manifest))
    if not fresh:
        return None
    for name in fresh:
        if len({tuple(np.asarray(r.numbers).tolist()) for r in by_reaction[name]}) != 1:
            raise DatasetError(f"reaction {name}: its geometries do not share one atom order")
    file = f"harvest_{len(manifest['shards']):04d}.h5"
    tmp = root / (file + ".tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["settings"] = json.dumps(manifest["settings"])
        h5.attrs["level_of_theory"] = level
        out = h5.create_group("reactions")
        splits = {"train": 0, "test": 0}
        for name in fresh:
            splits[_write_group(out, name, by_reaction[name], level, salt)] += len(by_reaction[name])
    os.replace(tmp, root / file)
    n_geometries = sum(len(by_reaction[name]) for name in fresh)
    entry = {"file": file, "sha256": sha256_of(root / file), "ids": fresh, "ok": len(fresh), "skipped": 0}
    manifest["shards"].append(entry | {"geometries": n_geometries, "split_geometries": splits})
    tmp_manifest = root / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp_manifest, root / MANIFEST)
    return manifest["shards"][-1]
