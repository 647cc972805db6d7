"""Zero-point energy and relative ZPE (seed Table 2) on held-out reactions: HIP vs the autograd Hessian of
the same backbone, both against GFN2-xTB finite-difference Hessians at the xTB minima.

    python benchmarks/zpe.py [--max-reactions 120]

Geometries: both ends of every held-out reaction (``benchmarks/heldout.py``), relaxed at GFN2-xTB.
ZPE from the Eckart-projected, mass-weighted Hessian (``aiida_hip.chem.vibrations.analyse``: real
modes only). Signed error = model - xTB; the table gives MAE and the standard deviation of the
signed error, as the seed does. Writes ``benchmarks/results/zpe.{json,png}`` and a REPORT.md section.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import RESULTS, caption, metadata, single_thread_model, update_report, write_json
from heldout import reactions as heldout_reactions

#: the seed's Table 2 (DFT, HORM), for the same quantities: (ZPE MAE, std), (dZPE MAE, std) in eV
SEED = {
    "HIP-EquiformerV2 predicted": ((0.0004, 0.0003), (0.0016, 0.0018)),
    "EquiformerV2 autograd": ((0.0600, 0.0719), (0.0539, 0.0706)),
    "LeftNet-DF autograd (best AD)": ((0.0094, 0.0039), (0.0269, 0.0264)),
}
MODES = ("predicted", "autograd")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-reactions", type=int, default=120)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args(argv)
    from aiida_hip.chem.reference import XTBReference
    from aiida_hip.chem.vibrations import analyse

    model = single_thread_model(args.checkpoint)
    xtb = XTBReference(workers=1)
    items = heldout_reactions()[: args.max_reactions]
    rows, seconds = [], {m: 0.0 for m in (*MODES, "xtb")}
    for k, item in enumerate(items, 1):
        row = {"reaction": item["name"], "n_atoms": len(item["numbers"])}
        for role in ("reactant", "product"):
            z, x = item["numbers"], item[role]
            t0 = time.perf_counter()
            ref = analyse(z, x, xtb.predict(z, x)["hessian"])
            seconds["xtb"] += time.perf_counter() - t0
            row[f"{role}_xtb"] = ref.zpe
            row[f"{role}_xtb_n_imaginary"] = ref.n_imaginary
            for mode in MODES:
                t0 = time.perf_counter()
                hessian = model.predict(z, x, hessian=mode)["hessian"]
                seconds[mode] += time.perf_counter() - t0
                row[f"{role}_{mode}"] = analyse(z, x, hessian).zpe
        rows.append(row)
        print(f"[{k}/{len(items)}] {item['name'][:60]:<60} ZPE xTB {row['reactant_xtb']:.3f} eV", flush=True)

    summary = {}
    for mode in MODES:
        zpe = np.array([r[f"reactant_{mode}"] - r["reactant_xtb"] for r in rows])
        d_model = np.array([r[f"reactant_{mode}"] - r[f"product_{mode}"] for r in rows])
        d_ref = np.array([r["reactant_xtb"] - r["product_xtb"] for r in rows])
        both = np.array([r[f"{role}_{mode}"] - r[f"{role}_xtb"] for r in rows for role in ("reactant", "product")])
        summary[mode] = {
            "zpe_mae_ev": float(np.abs(zpe).mean()),
            "zpe_signed_std_ev": float(zpe.std()),
            "zpe_mean_signed_ev": float(zpe.mean()),
            "dzpe_mae_ev": float(np.abs(d_model - d_ref).mean()),
            "dzpe_signed_std_ev": float((d_model - d_ref).std()),
            "zpe_mae_all_ends_ev": float(np.abs(both).mean()),
            "zpe_relative_mae": float(np.mean(np.abs(zpe) / np.array([r["reactant_xtb"] for r in rows]))),
            "seconds_per_hessian": seconds[mode] / (2 * len(rows)),
        }
    meta = metadata(
        checkpoint=args.checkpoint,
        level="GFN2-xTB (tblite) central-difference Hessians at GFN2-xTB minima",
        data=f"held-out test split, {len(rows)} reactions ({2 * len(rows)} minima)",
    )
    payload = {
        "meta": meta,
        "summary": summary,
        "seed_table2": SEED,
        "rows": rows,
        "xtb_seconds_per_hessian": seconds["xtb"] / (2 * len(rows)),
    }
    write_json("zpe", payload)
    plot(rows)
    table = markdown(summary, meta, payload["xtb_seconds_per_hessian"])
    print(table)
    update_report("zpe", table)


def markdown(summary: dict, meta: dict, xtb_seconds: float) -> str:
    lines = [
        "## Zero-point energy (seed Table 2)",
        "",
        caption(meta),
        "",
        "| Hessian | ZPE MAE [eV] (std of signed error) | dZPE MAE [eV] (std) | mean signed ZPE error [eV] "
        "| relative ZPE error | s per Hessian |",
        "|---|---|---|---|---|---|",
    ]
    names = {"predicted": "HIP predicted (ours)", "autograd": "autograd of the same backbone (ours)"}
    for mode, s in summary.items():
        lines.append(
            f"| {names[mode]} | {s['zpe_mae_ev']:.4f} ({s['zpe_signed_std_ev']:.4f}) | {s['dzpe_mae_ev']:.4f} "
            f"({s['dzpe_signed_std_ev']:.4f}) | {s['zpe_mean_signed_ev']:+.4f} | {100 * s['zpe_relative_mae']:.1f}% "
            f"| {s['seconds_per_hessian']:.3f} |"
        )
    lines.append(f"| GFN2-xTB finite differences (the reference) | 0 | 0 | 0 | 0 | {xtb_seconds:.3f} |")
    lines += ["", "The seed's Table 2 (DFT, HORM; a 10x larger model trained on ~100x our data) for comparison:", ""]
    lines += ["| seed model | ZPE MAE [eV] (std) | dZPE MAE [eV] (std) |", "|---|---|---|"]
    for name, ((a, b), (c, d)) in SEED.items():
        lines.append(f"| {name} | {a:.4f} ({b:.4f}) | {c:.4f} ({d:.4f}) |")
    lines += ["", "Signed-error distributions: `benchmarks/results/zpe.png`."]
    return "\n".join(lines)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for mode, colour in zip(MODES, ("#1f77b4", "#ff7f0e"), strict=True):
        zpe = [r[f"reactant_{mode}"] - r["reactant_xtb"] for r in rows]
        dzpe = [(r[f"reactant_{mode}"] - r[f"product_{mode}"]) - (r["reactant_xtb"] - r["product_xtb"]) for r in rows]
        axes[0].hist(zpe, bins=25, alpha=0.6, color=colour, label=mode)
        axes[1].hist(dzpe, bins=25, alpha=0.6, color=colour, label=mode)
    axes[0].set_xlabel("ZPE(model) - ZPE(xTB), reactant [eV]")
    axes[1].set_xlabel("dZPE(model) - dZPE(xTB) [eV]")
    for ax in axes:
        ax.set_ylabel("reactions")
        ax.legend()
    fig.suptitle("ZPE signed errors on held-out reactions")
    fig.savefig(RESULTS / "zpe.png", dpi=110)


if __name__ == "__main__":
    main()
