"""Speed and memory of Hessians: HIP head vs autograd (loop, vmap) vs finite differences vs GFN2-xTB.

Every (method, size) configuration runs in its own process so peak memory is its own. Writes
``benchmarks/results/hessian_speed.json`` and ``hessian_speed.png`` and prints a table.

    python benchmarks/hessian_speed.py [--device cuda] [--quick] [--channels 48]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
METHODS = ("energy_forces", "hip", "autograd_loop", "autograd_vmap", "fd_model", "xtb_fd")
LABELS = {
    "energy_forces": "energy + forces",
    "hip": "HIP (E + F + Hessian)",
    "autograd_loop": "autograd Hessian (row loop)",
    "autograd_vmap": "autograd Hessian (vmap)",
    "fd_model": "finite-difference Hessian of the model",
    "xtb_fd": "GFN2-xTB finite-difference Hessian",
}


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _model(args):
    import torch

    from aiida_hip.hip import HIPConfig, HIPModel, load_model

    torch.manual_seed(0)
    if args.checkpoint:
        return load_model(args.checkpoint, device=args.device)
    cfg = HIPConfig() if args.channels is None else HIPConfig(channels=args.channels)
    return HIPModel(cfg).to(args.device).eval()


def _call(method: str, model, mols):
    """Run one method on a list of molecules (batched where the method allows)."""
    if method == "energy_forces":
        return model.predict_batch(mols, hessian=None)
    if method == "hip":
        return model.predict_batch(mols, hessian="predicted")
    if method == "autograd_loop":
        return [model.predict(*m, hessian="autograd") for m in mols]
    if method == "autograd_vmap":
        from aiida_hip.hip.derivatives import autograd_hessian

        return [autograd_hessian(model, *m, vectorized=True) for m in mols]
    if method == "fd_model":
        return [model.predict(*m, hessian="finite-difference") for m in mols]
    if method == "xtb_fd":
        from aiida_hip.chem.reference import XTBReference

        ref = XTBReference(workers=1)
        return [ref.predict(*m) for m in mols]
    raise ValueError(method)


def worker(args) -> dict:
    """Child process: one configuration; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from molecules import MIXED_SMILES, alkane, embed_smiles

    if args.batch:
        mols = [embed_smiles(MIXED_SMILES[k % len(MIXED_SMILES)], seed=k) for k in range(args.batch)]
    else:
        mols = [alkane(args.carbons)]
    model = None if args.method == "xtb_fd" else _model(args)
    if args.method == "xtb_fd":
        import tblite.interface  # noqa: F401  (import cost is not part of the peak)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    _call(args.method, model, mols)  # first call: peak memory
    peak = (
        (torch.cuda.max_memory_allocated() / 2**20)
        if cuda
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    )
    times = []
    deadline = time.perf_counter() + args.budget
    for _ in range(args.repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _call(args.method, model, mols)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            break
    n_atoms = [len(z) for z, _ in mols]
    return {
        "method": args.method,
        "n_molecules": len(mols),
        "n_atoms": int(np.mean(n_atoms)),
        "time_s": float(np.median(times)),
        "time_per_molecule_s": float(np.median(times)) / len(mols),
        "repeats": len(times),
        "peak_memory_mb": float(peak),
        "memory_kind": "cuda max_memory_allocated" if cuda else "RSS growth over the first call",
    }


def run_child(args, **kw) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
        "--budget",
        str(args.budget),
    ]
    if args.channels is not None:
        cmd += ["--channels", str(args.channels)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    for key, value in kw.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        print(f"  failed: {kw}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    for method in METHODS:
        rows = [r for r in results["single"] if r["method"] == method]
        if rows:
            ax1.plot([r["n_atoms"] for r in rows], [r["time_s"] for r in rows], "o-", label=LABELS[method])
            ax2.plot(
                [r["n_atoms"] for r in rows], [max(r["peak_memory_mb"], 1e-2) for r in rows], "o-", label=LABELS[method]
            )
    for method in ("hip", "autograd_loop"):
        rows = [r for r in results["batched"] if r["method"] == method]
        if rows:
            ax3.plot([r["n_molecules"] for r in rows], [r["time_s"] for r in rows], "o-", label=LABELS[method])
    ax1.set(xlabel="atoms", ylabel="time per molecule [s]", yscale="log", title="Time (single molecule)")
    ax2.set(xlabel="atoms", ylabel="peak memory [MB]", yscale="log", title="Memory (single molecule)")
    ax3.set(
        xlabel="molecules per batch",
        ylabel="time per batch [s]",
        xscale="log",
        yscale="log",
        title="Time (batched, 10-24 atoms)",
    )
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    ax3.legend(fontsize=7)
    fig.suptitle(f"{results['meta']['model']} on {results['meta']['device_name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def ratio_table(results: dict) -> list[dict]:
    by = {(r["method"], r["n_atoms"]): r for r in results["single"]}
    rows = []
    for n in sorted({r["n_atoms"] for r in results["single"]}):
        if ("hip", n) not in by:
            continue
        hip, ef = by[("hip", n)], by.get(("energy_forces", n))
        row = {"n_atoms": n, "hip_s": hip["time_s"]}
        if ef:
            row["hip_over_ef"] = hip["time_s"] / ef["time_s"]
        for m in ("autograd_loop", "autograd_vmap", "fd_model", "xtb_fd"):
            if (m, n) in by:
                row[f"{m}_speedup"] = by[(m, n)]["time_s"] / hip["time_s"]
        if ("autograd_loop", n) in by and hip["peak_memory_mb"] > 0:
            row["memory_autograd_over_hip"] = by[("autograd_loop", n)]["peak_memory_mb"] / hip["peak_memory_mb"]
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels", type=int, default=None, help="override the default model width")
    p.add_argument("--checkpoint", default=None, help="benchmark a trained checkpoint instead")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per configuration")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--quick", action="store_true", help="fewer sizes and batches")
    p.add_argument("--output", default=str(RESULTS / "hessian_speed.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--carbons", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import torch

    from aiida_hip.hip import HIPConfig, HIPModel

    carbons = (1, 2, 6, 10, 19) if args.quick else (1, 2, 4, 6, 8, 10, 13, 16, 19)
    batches = (1, 4, 32) if args.quick else (1, 2, 4, 8, 16, 32, 64)
    cfg = HIPConfig() if args.channels is None else HIPConfig(channels=args.channels)
    n_params = HIPModel(cfg).num_parameters()
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else (platform.processor() or platform.machine()) + f", {args.threads} threads"
    )
    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "device": args.device,
            "device_name": device_name,
            "torch": torch.__version__,
            "model": args.checkpoint
            or f"HIPModel(channels={cfg.channels}, layers={cfg.num_layers}, "
            f"hessian_channels={cfg.hessian_channels}), {n_params} parameters",
            "molecules": "linear alkanes C1-C19 (5-59 atoms), RDKit ETKDG + MMFF; batches: 14 mixed CHNO molecules",
            "untrained": args.checkpoint is None,
        },
        "single": [],
        "batched": [],
    }
    print(f"{'method':<16}{'atoms':>6}{'time [s]':>12}{'peak [MB]':>12}")
    # vmap'd double backward holds all 3N cotangents at once: its memory grows ~N^3 (1.3 GB at 20
    # atoms on the CPU), so it stops at 32 atoms here; --quick also skips the slow loops beyond 40.
    caps = {"autograd_vmap": 32}
    if args.quick:
        caps.update({"autograd_loop": 40, "fd_model": 40})
    for c in carbons:
        for method in METHODS:
            if 3 * c + 2 > caps.get(method, 999):
                continue
            r = run_child(args, method=method, carbons=c)
            if r:
                results["single"].append(r)
                print(f"{method:<16}{r['n_atoms']:>6}{r['time_s']:>12.4f}{r['peak_memory_mb']:>12.1f}")
    for b in batches:
        for method in ("hip", "autograd_loop"):
            r = run_child(args, method=method, batch=b)
            if r:
                results["batched"].append(r)
                print(f"{method + ' x' + str(b):<16}{r['n_atoms']:>6}{r['time_s']:>12.4f}{r['peak_memory_mb']:>12.1f}")
    results["ratios"] = ratio_table(results)
    by_b = {(r["method"], r["n_molecules"]): r["time_s"] for r in results["batched"]}
    results["batched_speedup"] = {
        b: by_b[("autograd_loop", b)] / by_b[("hip", b)]
        for b in batches
        if ("hip", b) in by_b and ("autograd_loop", b) in by_b
    }
    print("\nratios (same run):")
    for row in results["ratios"]:
        print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print("batched speed-up HIP vs autograd:", {k: round(v, 1) for k, v in results["batched_speedup"].items()})
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
