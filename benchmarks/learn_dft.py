"""xTB -> DFT transfer of the batch fine-tune, measured once (issue 29): the shipped (GFN2-xTB) model fine-tuned
on B3LYP/6-31G* Hessians (PySCF, analytic) of a few keto-enol reactions, evaluated on the family's held-out
reactions at DFT.

For the smallest reactions of the enol family (``benchmarks/learn_family.py``): the xTB TS (Hessian-free
search) and both relaxed ends, each labelled with the analytic DFT Hessian, packed as a DFT shard folder
(:func:`aiida_hip.dataset.harvest.write_labels`; held-out reactions by the same name hash as the batch uses),
then :func:`aiida_hip.dataset.learn.finetune_checkpoint` with ``new_level``. The table compares, on the
held-out reactions' DFT Hessians: the shipped model, the fine-tuned model, and xTB's own Hessian (the gap
between the levels, which an xTB model cannot close without DFT labels).

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
            for reference, out in ((dft, out_dft), (xtb, out_xtb)):
                got = reference.predict(atoms.numbers, atoms.positions)  # DFT analytic, xTB central differences
                forces, hessian = np.asarray(got["forces"]), np.asarray(got["hessian"])
                source = f"{reaction['name']}/{kind}"
                out.append(
                    Label(
                        reaction["name"],
                        kind,
                        atoms.numbers,
                        atoms.positions,
                        float(got["energy"]),
                        forces,
                        hessian,
                        source,
                    )
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
    from aiida_hip.dataset.learn import finetune_checkpoint
    from aiida_hip.dataset.shards import load_shards
    from aiida_hip.hip import load_model
    from aiida_hip.hip.finetune import hessian_mae

    torch.set_num_threads(1)
    reactions = sorted(build("enol"), key=lambda r: len(r["reactant"]))[: args.reactions]
    labels, xtb_labels = dft_labels(reactions, args.work / "searches")
    folder = args.work / "dft_shards"
    write_labels(labels, folder, LEVEL, origin={"source": "benchmarks/learn_dft.py"})
    report = finetune_checkpoint(None, [folder], args.work / "finetuned_dft.pt", new_level=True)
    held = {s.reaction for s in load_shards(folder, "test")}
    pairs = [(x, d) for x, d in zip(xtb_labels, labels, strict=True) if d.reaction in held]
    xtb_gap = float(np.mean([np.abs(x.hessian - d.hessian).mean() for x, d in pairs]))
    test = load_shards(folder, "test")
    rows = {
        "shipped xTB model": hessian_mae(load_model(), test),
        "fine-tuned on DFT (head)": hessian_mae(load_model(args.work / "finetuned_dft.pt"), test),
        "xTB Hessian itself": xtb_gap,
    }
    payload = {
        "level": LEVEL,
        "reactions": [r["name"] for r in reactions],
        "held_out_reactions": sorted(held),
        "n_train_geometries": report["n_geometries"],
        "n_test_geometries": len(test),
        "finetune_seconds": report["seconds"],
        "hessian_mae_vs_dft": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"### xTB -> DFT: {report['n_geometries']} DFT Hessians of {report['n_reactions']} keto-enol reactions "
        f"({LEVEL}), held out: {', '.join(sorted(held))} ({len(test)} geometries)",
        "",
        "| Hessian source | MAE vs DFT on the held-out reactions (eV/A^2) |",
        "|---|---|",
        *[f"| {name} | {value:.3f} |" for name, value in rows.items()],
    ]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
