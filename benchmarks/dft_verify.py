"""DFT verification of the TSs the TS-search funnel found (seed Figure 4's last two bars): is the geometry a
first-order saddle at DFT (exactly one imaginary mode of the PySCF analytic Hessian), and is it also
stationary there (RMS force below 2e-3 Hartree/Bohr)?

    python benchmarks/dft_verify.py [--functional b3lyp --basis 6-31g*] [--max-atoms 8] [--per-config 8]

Takes the TSs with one imaginary mode from ``benchmarks/results/ts_search.json``, the smallest first (DFT
Hessians of larger molecules do not fit 2 cores in a benchmark run), at most ``--per-config`` per
configuration; the same reactions for every configuration where possible. Writes
``benchmarks/results/dft_verify.json`` and a REPORT.md section.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from common import RESULTS, caption, metadata, update_report, write_json

#: the seed's DFT check: RMS force below this (Hartree/Bohr)
FORCE_RMS_MAX = 2e-3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functional", default="b3lyp")
    parser.add_argument("--basis", default="6-31g*")
    parser.add_argument("--max-atoms", type=int, default=8)
    parser.add_argument("--per-config", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from aiida_hip.chem.reference import DFTReference
    from aiida_hip.chem.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    from aiida_hip.chem.vibrations import analyse

    funnel = json.loads((RESULTS / "ts_search.json").read_text())
    numbers = _numbers()
    found = [r for r in funnel["rows"] if r.get("one_imaginary") and r.get("ts") and r["n_atoms"] <= args.max_atoms]
    # reactions every configuration found first, then the rest; small ones first
    counts: dict[str, int] = {}
    for r in found:
        counts[r["reaction"]] = counts.get(r["reaction"], 0) + 1
    found.sort(key=lambda r: (-counts[r["reaction"]], r["n_atoms"], r["reaction"]))
    chosen, per = [], {}
    for r in found:
        if per.get(r["config"], 0) < args.per_config:
            chosen.append(r)
            per[r["config"]] = per.get(r["config"], 0) + 1
    dft = DFTReference(functional=args.functional, basis=args.basis)
    rows = []
    for k, r in enumerate(chosen, 1):
        z, x = numbers[r["reaction"]], np.array(r["ts"])
        t0 = time.perf_counter()
        try:
            out = dft.predict(z, x, hessian="analytic", name=r["reaction"])
        except Exception as exc:
            rows.append({"reaction": r["reaction"], "config": r["config"], "error": str(exc)[:200]})
            continue
        vib = analyse(z, x, out["hessian"])
        rms = float(np.sqrt(np.mean(out["forces"] ** 2))) / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        rows.append(
            {
                "reaction": r["reaction"],
                "config": r["config"],
                "n_atoms": len(z),
                "n_imaginary": int(vib.n_imaginary),
                "imaginary_frequency_cm1": float(vib.frequencies[0]) if vib.n_imaginary else None,
                "force_rms_ha_per_bohr": rms,
                "one_imaginary": vib.n_imaginary == 1,
                "verified": vib.n_imaginary == 1 and rms < FORCE_RMS_MAX,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"[{k}/{len(chosen)}] {r['config']:<16} {r['reaction'][:50]:<50} n_imag {vib.n_imaginary} "
            f"rms {rms:.1e} {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    summary = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        sel = [r for r in rows if r["config"] == config and "error" not in r]
        summary[config] = {
            "checked": len(sel),
            "one_imaginary": sum(r["one_imaginary"] for r in sel),
            "verified": sum(r["verified"] for r in sel),
            "median_force_rms_ha_per_bohr": float(np.median([r["force_rms_ha_per_bohr"] for r in sel]))
            if sel
            else None,
            "errors": sum(1 for r in rows if r["config"] == config and "error" in r),
        }
    meta = metadata(
        level=f"{dft.name} (PySCF analytic Hessian, restricted Kohn-Sham), at the TS geometries of the funnel",
        data=f"TSs with one imaginary mode and <= {args.max_atoms} atoms from benchmarks/results/ts_search.json",
        threads=args.threads,
    )
    write_json("dft_verify", {"meta": meta, "summary": summary, "rows": rows})
    table = markdown(summary, meta)
    print(table)
    update_report("dft_verify", table)


def _numbers() -> dict[str, np.ndarray]:
    """Atomic numbers of every funnel reaction (the funnel JSON keeps positions only)."""
    from common import ROOT
    from ts_search import own_reactions, xtb_rx_reactions

    out = {name: z for name, z, _, _ in xtb_rx_reactions()}
    for data in (ROOT / "data" / "hip_xtb.h5", ROOT / "data" / "hip_xtb_test.h5"):
        if data.is_file():
            out |= {name: z for name, z, _, _ in own_reactions(data)}
    return out


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        "## DFT verification of the TSs found (seed Figure 4, DFT bars)",
        "",
        caption(meta),
        "",
        "| configuration | TSs checked | one imaginary mode at DFT | and RMS force < 2e-3 Ha/Bohr "
        "| median RMS force [Ha/Bohr] |",
        "|---|---|---|---|---|",
    ]
    for config, s in summary.items():
        med = s["median_force_rms_ha_per_bohr"]
        lines.append(
            f"| {config} | {s['checked']} | {s['one_imaginary']}/{s['checked']} | {s['verified']}/{s['checked']} | "
            f"{'-' if med is None else f'{med:.1e}'} |"
        )
    lines += [
        "",
        "The TSs are GFN2-xTB-level (or HIP-on-xTB) saddle points, so the force criterion measures how far the "
        "xTB saddle lies from the DFT one; the imaginary-mode count says whether the same kind of saddle exists "
        "there. The seed verifies TSs of a DFT-trained model against its own level of theory.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
