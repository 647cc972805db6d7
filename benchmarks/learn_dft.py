"""xTB -> DFT transfer of the batch fine-tune, measured once (issue 29): the shipped (GFN2-xTB) model fine-tuned
on B3LYP/6-31G* Hessians (PySCF, analytic) of a few keto-enol reactions, evaluated on the family's held-out
reactions at DFT.

For the smallest reactions of the enol family (``benchmarks/learn_family.py``): the xTB TS (Hessian-free
search) and both relaxed ends, each labelled with the analytic DFT Hessian, packed as a DFT shard folder
(:func:`aiida_hip.dataset.harvest.write_labels`; held-out reactions by the same name hash as the batch uses),
then each reaction is held out in turn while the others' DFT Hessians fine-tune the shipped model (head, the
batch's settings). The table compares, on the held-out reaction's DFT Hessians: the shipped model, the
fine-tuned model, and xTB's own Hessian (the gap between the levels, which an xTB model cannot close without
DFT labels). DFT labels are cached per geometry (minutes each), so a rerun resumes.

    python benchmarks/learn_dft.py [--reactions 6]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "learn_dft"
LEVEL = "B3LYP/6-31G* (PySCF)"


def dft_cache_positions(work: Path, name: str, kind: str, default: np.ndarray) -> np.ndarray:
    """The geometry a cached DFT label was computed at (the xTB label goes there too), else ``default``."""
    cache = work / name / f"{kind}_dft.npz"
    if not cache.is_file():
        return default
    with np.load(cache) as got:
        return got["positions"]


def dft_labels(reactions: list[dict], work: Path) -> tuple[list, list]:
    """DFT and xTB labels (TS and both ends) of every reaction whose Hessian-free xTB search verifies."""
    from aiida_hip.chem.reference import DFTReference, XTBReference
    from aiida_hip.dataset.harvest import Label
    from aiida_hip.pipeline import Level, TSSearchSettings, ts_search

    dft = DFTReference("b3lyp", "6-31g*", 0, None, 1e-10, 4000)
    xtb = XTBReference(charge=0, multiplicity=None, workers=1)
    out_dft, out_xtb = [], []
    for reaction in reactions:
        level, settings = Level(calculator="xtb", hessian="none"), TSSearchSettings(temperature=None)
        result = ts_search(reaction["reactant"], reaction["product"], work / reaction["name"], level, settings)
        if result.status != "success":
            print(f"{reaction['name']}: {result.status}, left out")
            continue
        geometries = {"reactant": reaction["reactant"], "product": reaction["product"], "ts": result.ts}
        for kind, atoms in geometries.items():
            t0 = time.perf_counter()
            for tag, reference, out in (("dft", dft, out_dft), ("xtb", xtb, out_xtb)):
                cache = work / reaction["name"] / f"{kind}_{tag}.npz"  # minutes per DFT Hessian: resumable
                if not cache.is_file():
                    positions = dft_cache_positions(work, reaction["name"], kind, atoms.positions)
                    got = reference.predict(atoms.numbers, positions)  # DFT analytic, xTB central differences
                    values = {k: got[k] for k in ("energy", "forces", "hessian")}
                    np.savez(cache, positions=positions, **values)
                with np.load(cache) as got:
                    positions, forces, hessian, energy = got["positions"], got["forces"], got["hessian"], got["energy"]
                name = reaction["name"]
                out.append(
                    Label(name, kind, atoms.numbers, positions, float(energy), forces, hessian, f"{name}/{kind}")
                )
            print(f"{reaction['name']} {kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out_dft, out_xtb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reactions", type=int, default=6)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "learn_dft")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from learn_family import build

    from aiida_hip.dataset.harvest import write_labels
    from aiida_hip.hip import load_model
    from aiida_hip.hip.finetune import FinetuneSettings, finetune, hessian_mae

    torch.set_num_threads(1)
    reactions = sorted(build("enol"), key=lambda r: len(r["reactant"]))[: args.reactions]
    labels, xtb_labels = dft_labels(reactions, args.work / "searches")
    folder = args.work / "dft_shards"
    write_labels(labels, folder, LEVEL, origin={"source": "benchmarks/learn_dft.py"})  # as a batch stores them
    samples, xtb = [lb.sample() for lb in labels], [lb.sample() for lb in xtb_labels]
    shipped, settings = load_model(), FinetuneSettings()
    folds, names = [], sorted({s.reaction for s in samples})
    for name in names:  # leave one reaction out: too few reactions for the batch's hash split to hold one out
        train = [s for s in samples if s.reaction != name]
        test = [s for s in samples if s.reaction == name]
        model, report = finetune(shipped, train, settings)
        gap = float(
            np.mean(
                [np.abs(x.hessian - d.hessian).mean() for x, d in zip(xtb, samples, strict=True) if d.reaction == name]
            )
        )
        folds.append(
            {
                "held_out": name,
                "n_train": len(train),
                "seconds": report["seconds"],
                "shipped": hessian_mae(shipped, test),
                "finetuned": hessian_mae(model, test),
                "xtb_hessian": gap,
            }
        )
    rows = {
        "shipped xTB model": float(np.mean([f["shipped"] for f in folds])),
        "fine-tuned on the other reactions' DFT Hessians (head)": float(np.mean([f["finetuned"] for f in folds])),
        "xTB's own Hessian": float(np.mean([f["xtb_hessian"] for f in folds])),
    }
    payload = {"level": LEVEL, "reactions": names, "folds": folds, "hessian_mae_vs_dft": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"### xTB -> DFT: {len(samples)} DFT Hessians ({LEVEL}) of {len(names)} keto-enol reactions, each held out "
        "in turn (the others' labels fine-tune the shipped xTB model)",
        "",
        "| Hessian source | MAE vs DFT on the held-out reaction, mean of the folds (eV/A^2) |",
        "|---|---|",
        *[f"| {name} | {value:.3f} |" for name, value in rows.items()],
    ]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
