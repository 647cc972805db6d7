"""Geometry optimisation (seed Figure 3): steps and wall time to Gaussian ``normal`` convergence from
distorted held-out minima, for RFO with HIP / autograd / finite-difference Hessians every step, RFO-BFGS
started from those Hessians, and RFO-BFGS from a model (Lindh) Hessian, all on the HIP energy surface;
plus the same at GFN2-xTB (xTB Hessians every step, and model-Hessian BFGS) as the reference level.

    python benchmarks/geometry_opt.py [--geometries 50] [--rms 0.2] [--workers 2]

Start geometries: ``--geometries`` distinct single-molecule minima of the held-out reactions
(``benchmarks/heldout.py``, a seeded choice; complexes of two molecules left out), each rattled once
by seeded Gaussian noise of ``--rms`` Angstrom RMS (the seed used 0.5 A on larger Transition1x molecules).
Budget 150 steps (as the seed). A run counts as converged when pysisyphus's Gaussian-default criteria are
met inside the budget; the table also says how often the optimiser came back to the molecule it started
from (same bonds). Redundant internal coordinates by default, as the seed. Writes
``benchmarks/results/geometry_opt.{json,png}`` and a REPORT.md section.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from common import RESULTS, caption, metadata, update_report, write_json
from heldout import distorted, minima

#: name -> (calculator, hessian, Hessian every k steps or None = BFGS only, start Hessian)
METHODS = {
    "RFO / HIP predicted": ("hip", "predicted", 1, "calc"),
    "RFO / autograd": ("hip", "autograd", 1, "calc"),
    "RFO / finite difference": ("hip", "finite-difference", 1, "calc"),
    "RFO-BFGS / HIP predicted init": ("hip", "predicted", None, "calc"),
    "RFO-BFGS / autograd init": ("hip", "autograd", None, "calc"),
    "RFO-BFGS / model Hessian init": ("hip", "none", None, "guess"),
    "xTB: RFO / xTB Hessian": ("xtb", "reference", 1, "calc"),
    "xTB: RFO-BFGS / model Hessian init": ("xtb", "none", None, "guess"),
}


def run_one(job: dict) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    from ase import Atoms

    from aiida_hip.chem.geometry import connectivity
    from aiida_hip.pipeline.calculators import Evaluator, Level
    from aiida_hip.pipeline.opt import OptSettings, run_opt

    torch.set_num_threads(1)
    calculator, hessian, recalc, start = METHODS[job["method"]]
    evaluator = Evaluator(Level(calculator=calculator, hessian=hessian, checkpoint=job["checkpoint"]))
    atoms = Atoms(numbers=job["numbers"], positions=job["positions"])
    settings = OptSettings(
        convergence="normal", max_cycles=150, hessian_recalc=recalc, hessian_init=start, coord_type=job["coords"]
    )
    t0 = time.perf_counter()
    row = {"geometry": job["name"], "method": job["method"], "n_atoms": len(atoms)}
    with tempfile.TemporaryDirectory() as workdir:
        try:
            result = run_opt(atoms, evaluator, settings, workdir)
        except Exception as exc:  # every failure is a row
            return row | {"converged": False, "steps": None, "wall_s": time.perf_counter() - t0, "message": repr(exc)}
    same = connectivity(job["numbers"], result.atoms.positions) == connectivity(job["numbers"], job["minimum"])
    return row | {
        "converged": result.converged,
        "steps": result.n_cycles,
        "hessians": result.n_hessian_evaluations,
        "wall_s": time.perf_counter() - t0,
        "same_molecule": bool(same),
        "message": result.message[:200],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometries", type=int, default=50)
    parser.add_argument("--rms", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated names of METHODS")
    parser.add_argument("--coords", default="redund", choices=["redund", "cart"], help="as the seed: redund")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--summarize-only", action="store_true", help="table from the runs finished so far")
    args = parser.parse_args(argv)
    pool_minima = [m for m in minima() if "." not in m["name"]]  # single molecules, as the seed's reactants
    pick = np.random.default_rng(20261126).choice(len(pool_minima), min(args.geometries, len(pool_minima)), False)
    chosen = [pool_minima[i] for i in sorted(pick)]
    starts = distorted(chosen, per_molecule=1, rms=args.rms)
    methods = args.methods.split(",")
    jobs = [
        {
            "name": s["name"],
            "numbers": s["numbers"],
            "positions": s["positions"],
            "minimum": m["positions"],
            "method": method,
            "checkpoint": args.checkpoint,
            "coords": args.coords,
        }
        for s, m in zip(starts, chosen, strict=True)
        for method in methods
    ]
    print(f"{len(starts)} start geometries x {len(methods)} methods on {args.workers} processes")
    # every finished run is appended to a JSON-lines file, so an interrupted run can be summarised
    # (--summarize-only) or resumed (runs already there are not repeated)
    partial = RESULTS / "geometry_opt.partial.jsonl"
    done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.is_file() else []
    rows = [r for r in done if r["method"] in methods and r["geometry"] in {s["name"] for s in starts}]
    seen = {(r["geometry"], r["method"]) for r in rows}
    jobs = [] if args.summarize_only else [j for j in jobs if (j["name"], j["method"]) not in seen]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, job) for job in jobs]
        for k, future in enumerate(as_completed(futures), 1):
            row = future.result()
            rows.append(row)
            with partial.open("a") as handle:
                handle.write(json.dumps(row, default=float) + "\n")
            if k % 20 == 0 or k == len(jobs):
                print(f"[{k}/{len(jobs)}] {row['method']:<36} {row['steps']} steps {row['wall_s']:.1f} s", flush=True)
    starts = [s for s in starts if any(r["geometry"] == s["name"] for r in rows)]  # those that ran
    summary = {}
    for method in methods:
        sel = [r for r in rows if r["method"] == method]
        ok = [r for r in sel if r["converged"]]
        summary[method] = {
            "runs": len(sel),
            "converged": len(ok),
            "failed": len(sel) - len(ok),
            "same_molecule": sum(bool(r.get("same_molecule")) for r in ok),
            "median_steps": statistics.median(r["steps"] for r in ok) if ok else None,
            "mean_steps": float(np.mean([r["steps"] for r in ok])) if ok else None,
            "median_wall_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
            "median_hessians": statistics.median(r["hessians"] for r in ok) if ok else None,
        }
    meta = metadata(
        checkpoint=args.checkpoint,
        level="HIP energy surface (shipped checkpoint, float64) for the rows without 'xTB:'; "
        "GFN2-xTB for the 'xTB:' rows",
        data=f"{len(starts)} held-out minima (test split) rattled by {args.rms} A RMS, seed 20261126",
        convergence="Gaussian normal (pysisyphus gau), 150 steps",
        coordinates="redundant internals (pysisyphus)" if args.coords == "redund" else "Cartesian",
        processes=args.workers,
    )
    write_json("geometry_opt", {"meta": meta, "summary": summary, "rows": rows})
    plot(rows, methods)
    table = markdown(summary, meta)
    print(table)
    update_report("geometry_opt", table)


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        "## Geometry optimisation (seed Figure 3)",
        "",
        caption(meta),
        "",
        "| method | converged | failed | back to the same molecule | median steps | mean steps | median Hessians "
        "| median wall [s] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, s in sorted(summary.items(), key=lambda kv: (kv[0].startswith("xTB"), kv[1]["median_steps"] or 1e9)):

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        lines.append(
            f"| {method} | {s['converged']}/{s['runs']} | {s['failed']} | {s['same_molecule']} | "
            f"{f(s['median_steps'], '.1f')} | {f(s['mean_steps'], '.1f')} | {f(s['median_hessians'], '.0f')} | "
            f"{f(s['median_wall_s'], '.2f')} |"
        )
    lines += [
        "",
        "Seed Figure 3 (DFT-trained HIP-EquiformerV2, 80 Transition1x reactants rattled by 0.5 A): RFO with HIP "
        "Hessians needs the fewest steps in the median and is the fastest; RFO with autograd or finite-difference "
        "Hessians often fails to converge. Box plots: `benchmarks/results/geometry_opt.png`.",
    ]
    return "\n".join(lines)


def plot(rows: list[dict], methods: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    data_steps = [[r["steps"] for r in rows if r["method"] == m and r["converged"]] or [np.nan] for m in methods]
    data_wall = [[r["wall_s"] for r in rows if r["method"] == m and r["converged"]] or [np.nan] for m in methods]
    for ax, data, label in ((axes[0], data_steps, "steps to convergence"), (axes[1], data_wall, "wall time [s]")):
        ax.boxplot(data, orientation="horizontal", tick_labels=methods)
        ax.set_xlabel(label)
    axes[1].set_xscale("log")
    axes[1].set_yticklabels([])
    fig.suptitle("Geometry optimisation from rattled held-out minima (converged runs)")
    fig.savefig(RESULTS / "geometry_opt.png", dpi=110)


if __name__ == "__main__":
    main()
