"""Dataset card (markdown) and the small committed sample used by the tests."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import h5py
import numpy as np

SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O"}
REGENERATE = "aiida-hip data generate --output data/hip_xtb.h5 --workers 2"


def summarise(path: str | Path | list) -> dict:
    """Counts over one dataset file, or over several (the committed shards) as one data set."""
    stats = {
        "reactions": collections.Counter(),
        "geometries": collections.Counter(),
        "kinds": collections.Counter(),
        "skip_reasons": collections.Counter(),
        "elements": collections.Counter(),
        "sizes": [],
        "barriers": [],
        "xtb_version": set(),
        "moves": collections.Counter(),
    }
    settings = "{}"
    for g, file_settings in _groups(path):
        settings = file_settings  # every file of one data set carries the same generator settings
        if g.attrs["status"] != "ok":
            reason = re.sub(r"[0-9.]+ eV", "X eV", str(g.attrs.get("reason", "")).split(":")[0])
            stats["skip_reasons"][reason[:70]] += 1
            continue
        split = g.attrs["split"]
        n = int(g["energy"].shape[0])
        numbers = g["numbers"][()]
        stats["reactions"][split] += 1
        stats["geometries"][split] += n
        stats["moves"][g.attrs["move"]] += 1
        for k in g["kind"][()]:
            stats["kinds"][k.decode()] += 1
        for z in numbers:
            stats["elements"][SYMBOLS.get(int(z), str(z))] += n
        stats["sizes"].append(len(numbers))
        stats["barriers"].append(float(g.attrs["barrier_ev"]))
        stats["xtb_version"].add(str(g.attrs["xtb_version"]))
    stats["settings"] = json.loads(settings)
    return stats


def _groups(paths):
    """(reaction group, the file's settings JSON) over one file or several."""
    for path in paths if isinstance(paths, list) else [paths]:
        with h5py.File(path, "r") as h5:
            settings = h5.attrs.get("settings", "{}")
            for g in h5["reactions"].values():
                yield g, settings


def dataset_card(path: str | Path | list, title: str | None = None, notes: tuple[str, ...] = ()) -> str:
    s = summarise(path)
    sizes, barriers = np.array(s["sizes"] or [0]), np.array(s["barriers"] or [0.0])
    total_r, total_g = sum(s["reactions"].values()), sum(s["geometries"].values())
    lines = [
        title or f"# Dataset card: `{Path(path).name}`",
        "",
        "Level of theory: GFN2-xTB (" + ", ".join(sorted(s["xtb_version"])) + "); energies eV, forces eV/A, "
        "Hessians eV/A^2 by central differences of analytic gradients (step in the settings below).",
        "",
        f"- reactions kept: {total_r} (" + ", ".join(f"{k} {v}" for k, v in sorted(s["reactions"].items())) + ")",
        f"- geometries: {total_g} (" + ", ".join(f"{k} {v}" for k, v in sorted(s["geometries"].items())) + ")",
        f"- reactions skipped: {sum(s['skip_reasons'].values())} ("
        + "; ".join(f"{k}: {v}" for k, v in s["skip_reasons"].most_common(6))
        + ")",
        f"- atoms per molecule: {sizes.min()}-{sizes.max()} (median {int(np.median(sizes))})",
        f"- NEB barrier (eV): median {np.median(barriers):.2f}, 10-90 %: {np.percentile(barriers, 10):.2f}-"
        f"{np.percentile(barriers, 90):.2f}",
        "- atoms by element (over all geometries): " + ", ".join(f"{k} {v}" for k, v in s["elements"].most_common()),
        "- moves: " + ", ".join(f"{k} {v}" for k, v in s["moves"].most_common()),
        "- geometry kinds: " + ", ".join(f"{k} {v}" for k, v in s["kinds"].most_common()),
        "",
        "Split: train/val/test 80/10/10 by reactant molecule (hash with the seed), so every test reaction "
        "starts from a molecule never seen in training.",
        "",
        "Built from `aiida_hip/dataset/molecules.smi` (our own list; nothing from pysisyphus's geom_library).",
        f"Regenerate (resumable): `{REGENERATE}`",
        "",
        "Settings: `" + json.dumps(s["settings"]) + "`",
        *notes,
    ]
    return "\n".join(lines) + "\n"


def write_sample(source: str | Path, target: str | Path, per_split: dict | None = None, max_atoms: int = 12) -> int:
    """Copy a few small reactions of every split into ``target`` (the test sample); returns geometries."""
    per_split = per_split or {"train": 6, "val": 2, "test": 2}
    taken, count = collections.Counter(), 0
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        out = dst.create_group("reactions")
        for rid, g in src["reactions"].items():
            if g.attrs["status"] != "ok" or len(g["numbers"]) > max_atoms:
                continue
            split = g.attrs["split"]
            if taken[split] >= per_split.get(split, 0):
                continue
            src.copy(g, out, name=rid)
            taken[split] += 1
            count += int(g["energy"].shape[0])
    return count
