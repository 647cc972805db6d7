"""Extremum classification by frequency analysis (seed Table 3) on held-out geometries: does the Hessian
give the right number of imaginary modes? HIP vs the autograd Hessian of the same backbone, against the
GFN2-xTB Hessians stored with each geometry.

    python benchmarks/extremum.py --data data/hip_xtb_test.h5 [--split test] [--max-samples 300]

Geometries: every labelled geometry of the held-out reactions (``aiida-hip data generate --split test``):
NEB images (the relaxed ends are minima, the climbing image is near a first-order saddle), NEB snapshots
and thermal normal-mode samples around the climbing image and both minima. Each geometry's class is the
imaginary-mode count of its xTB Hessian after Eckart projection (threshold 20 cm^-1, the pipeline's):
minimum (0), first-order saddle (1), higher-order saddle (>= 2). Writes
``benchmarks/results/extremum.{json,png}`` and a REPORT.md section.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import RESULTS, ROOT, caption, metadata, single_thread_model, update_report, write_json

#: the seed's Table 3: accuracy of the imaginary-mode count on 1000 HORM-T1x geometries (DFT)
SEED = {"HIP-EquiformerV2 predicted": 0.92, "EquiformerV2 autograd": 0.75, "LeftNet-CF autograd (best AD)": 0.82}
MODES = ("predicted", "autograd")
CLASSES = ("minimum", "first-order saddle", "higher-order saddle")


def category(n_imaginary: int) -> str:
    return CLASSES[min(n_imaginary, 2)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "hip_xtb_test.h5")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-samples", type=int, default=300)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args(argv)
    from aiida_hip.chem.vibrations import analyse
    from aiida_hip.hip.data import load_samples

    model = single_thread_model(args.checkpoint)
    samples = load_samples(args.data, args.split)
    if len(samples) > args.max_samples:  # a seeded subset, not a chosen one
        keep = np.random.default_rng(0).choice(len(samples), args.max_samples, replace=False)
        samples = [samples[i] for i in sorted(keep)]
    rows, seconds = [], {m: 0.0 for m in MODES}
    for k, s in enumerate(samples, 1):
        row = {"reaction": s.reaction, "kind": s.kind, "n_atoms": len(s.numbers)}
        row["xtb"] = int(analyse(s.numbers, s.positions, s.hessian).n_imaginary)
        for mode in MODES:
            t0 = time.perf_counter()
            hessian = model.predict(s.numbers, s.positions, hessian=mode)["hessian"]
            seconds[mode] += time.perf_counter() - t0
            row[mode] = int(analyse(s.numbers, s.positions, hessian).n_imaginary)
        rows.append(row)
        if k % 50 == 0:
            print(f"[{k}/{len(samples)}]", flush=True)

    summary = {"classes": {c: sum(category(r["xtb"]) == c for r in rows) for c in CLASSES}}
    for mode in MODES:
        summary[mode] = {
            "count_accuracy": float(np.mean([r[mode] == r["xtb"] for r in rows])),
            "class_accuracy": float(np.mean([category(r[mode]) == category(r["xtb"]) for r in rows])),
            "per_class": {
                c: float(np.mean([r[mode] == r["xtb"] for r in rows if category(r["xtb"]) == c]))
                if summary["classes"][c]
                else None
                for c in CLASSES
            },
            "confusion": {
                c: {p: sum(category(r["xtb"]) == c and category(r[mode]) == p for r in rows) for p in CLASSES}
                for c in CLASSES
            },
            "mean_abs_count_error": float(np.mean([abs(r[mode] - r["xtb"]) for r in rows])),
            "seconds_per_hessian": seconds[mode] / len(rows),
        }
    meta = metadata(
        checkpoint=args.checkpoint,
        level="GFN2-xTB (tblite) central-difference Hessians; imaginary threshold 20 cm^-1 after Eckart projection",
        data=f"{args.split} split of {args.data.name}: {len(rows)} geometries from "
        f"{len({r['reaction'] for r in rows})} held-out reactions",
    )
    write_json("extremum", {"meta": meta, "summary": summary, "seed_table3": SEED, "rows": rows})
    plot(summary)
    table = markdown(summary, meta)
    print(table)
    update_report("extremum", table)


def markdown(summary: dict, meta: dict) -> str:
    n = sum(summary["classes"].values())
    shares = ", ".join(f"{c} {v} ({100 * v / n:.0f}%)" for c, v in summary["classes"].items())
    lines = [
        "## Extremum classification (seed Table 3)",
        "",
        caption(meta),
        f"Classes by the xTB Hessian: {shares}.",
        "",
        "| Hessian | imaginary count right | class right | "
        + " | ".join(f"count right, {c}" for c in CLASSES)
        + " | mean abs. count error | s per Hessian |",
        "|---" * (5 + len(CLASSES)) + "|",
    ]
    names = {"predicted": "HIP predicted (ours)", "autograd": "autograd of the same backbone (ours)"}
    for mode in MODES:
        s = summary[mode]
        per = " | ".join("-" if s["per_class"][c] is None else f"{100 * s['per_class'][c]:.0f}%" for c in CLASSES)
        lines.append(
            f"| {names[mode]} | {100 * s['count_accuracy']:.1f}% | {100 * s['class_accuracy']:.1f}% | {per} "
            f"| {s['mean_abs_count_error']:.2f} | {s['seconds_per_hessian']:.3f} |"
        )
    lines += ["", "The seed's Table 3 (DFT, 1000 HORM-T1x geometries: 44% first-order, 37% minima):", ""]
    lines += [f"- {name}: {100 * acc:.0f}%" for name, acc in SEED.items()]
    lines += ["", "Confusion matrices (rows: xTB class, columns: predicted class): `benchmarks/results/extremum.png`."]
    return "\n".join(lines)


def plot(summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODES), figsize=(10, 4), layout="constrained")
    short = ("min", "1st", ">=2nd")
    for ax, mode in zip(axes, MODES, strict=True):
        matrix = np.array([[summary[mode]["confusion"][c][p] for p in CLASSES] for c in CLASSES])
        ax.imshow(matrix, cmap="Blues")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center")
        ax.set_xticks(range(3), short)
        ax.set_yticks(range(3), short)
        ax.set_xlabel(f"{mode} Hessian")
        ax.set_ylabel("xTB Hessian")
        ax.set_title(f"{mode}: {100 * summary[mode]['count_accuracy']:.0f}% counts right")
    fig.savefig(RESULTS / "extremum.png", dpi=110)


if __name__ == "__main__":
    main()
