"""TS-search success funnel per Hessian source (the seed's Figure 4 on our own reactions).

    python benchmarks/ts_search.py [--sets xtb_rx,own] [--configs hip:predicted,hip:none,xtb:reference]
                                   [--routes pysisyphus,sella,auto] [--data data/hip_xtb.h5]
                                   [--max-reactions 20] [--workers 2]

With several ``--routes`` every configuration runs on each route and is labelled ``route/calculator:hessian``
(the ``auto`` rows also count how often the second route had to take over). Where a configuration ran on
both ``pysisyphus`` and ``sella``, the table adds ``auto`` in both orders composed from those rows
(``auto_rows``); ``--output benchmarks/results/ts_search_routes`` writes the route comparison of the report:

    python benchmarks/ts_search.py --routes pysisyphus,sella --configs xtb:reference,hip:predicted \
        --data data/hip_xtb_test.h5 --workdir runs/bench_routes --output benchmarks/results/ts_search_routes

Development sets only: pysisyphus's ``lib:xtb_rx`` reactions made of C, H, N, O and the test split of
our own dataset (reactant and product = the xTB-optimised ends of each reaction's NEB). Every
(reaction, configuration) runs ``aiida_hip.pipeline.ts_search`` in its own process; writes
``benchmarks/results/ts_search.json`` (+ ``.png``, ``.md``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import caption, metadata, update_report

from aiida_hip.common.types import Outcome, Route, choices

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search"
#: the `own` development reactions: the first 16 test-split reactions the generator enumerates, of which
#: these 10 label ok (they lie in the committed shards; the list keeps the set fixed as the shards grow)
OWN_IDS = ROOT / "benchmarks" / "own_reactions.txt"
#: the held-out set: the other test-split reactions of the shards; reported on, never tuned on
HELDOUT_IDS = ROOT / "benchmarks" / "heldout_reactions.txt"
ROUTES_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_routes"
POLICY_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_policy"
PURE_HIP_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_pure_hip"
POLICY_PYSISYPHUS_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_policy_pysisyphus"
HELDOUT_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_heldout"
ATTEMPTS_DEV_OUTPUT = ROOT / "benchmarks" / "results" / "ts_search_attempts_dev"
_ATTEMPTS_NOTE = (
    "Route `auto`. `:single` = one attempt per route with the level's Hessians (the search before attempts); "
    "without it the attempt plan of `aiida_hip.common.attempts` under its budget. `:qrc` = verified by the quick "
    "reaction coordinate, else the IRC. `:levelends` = a two-level search's ends minimised from one HIP Hessian "
    "(the default before). `hip:predicted>xtb@reference` = the two-level default. Reference cost = xTB gradients "
    "+ 6N per xTB Hessian over all reactions, per verified TS (IRC intended)."
)
#: output -> (REPORT.md section key, title, note under the table)
REPORT_SECTIONS = {
    HELDOUT_OUTPUT: (
        "ts_search_heldout",
        "The default on held-out reactions (never tuned on)",
        _ATTEMPTS_NOTE + " Held-out set: `benchmarks/heldout_reactions.txt`.",
    ),
    ATTEMPTS_DEV_OUTPUT: (
        "ts_search_attempts_dev",
        "Attempts and QRC on the development reactions",
        _ATTEMPTS_NOTE + " Development sets: `lib:xtb_rx` CHNO and `benchmarks/own_reactions.txt`.",
    ),
    DEFAULT_OUTPUT: (
        "ts_search",
        "TS-search funnel (seed Figure 4)",
        "Configurations are calculator:hessian (RS-P-RFO with that Hessian every step; `none` = Bofill updates "
        "of a model Hessian). Funnel: `benchmarks/results/ts_search.png`; DFT check of the TSs found: below.",
    ),
    ROUTES_OUTPUT: (
        "ts_search_routes",
        "TS routes: pysisyphus, Sella and auto",
        "Configurations are route/calculator:hessian: `pysisyphus` (GSM -> RS-P-RFO -> EulerPC IRC), `sella` "
        "(geodesic interpolation -> Sella -> Sella IRC); `auto(first,second)` rows are composed from the two "
        "single-route rows of each reaction (the first route's outcome when it succeeded, else the second's; "
        "wall time and Hessians of both). Funnel: `benchmarks/results/ts_search_routes.png`.",
    ),
    POLICY_PYSISYPHUS_OUTPUT: (
        "ts_search_policy_pysisyphus",
        "Hessian policies on the pysisyphus route alone",
        "GSM / geodesic CI-NEB -> RS-P-RFO -> EulerPC IRC, no Sella. `:rsprfo`: conditioned, guarded HIP "
        "Hessians in RS-P-RFO (at the start only, or every step); `xtb:predicted:1` without it: RS-P-RFO starts "
        "Hessian-free (Lindh + tangent), the default since this run; HIP Hessians still condition the ends' start.",
    ),
    PURE_HIP_OUTPUT: (
        "ts_search_pure_hip",
        "The search on the HIP surface alone (`--refine none`)",
        "`hip:predicted`: HIP energies and forces, conditioned HIP Hessians as the preconditioner of the optimiser's "
        "own estimate (at the start only in this run), under the guard; `hip:none`: HIP energies and forces, "
        "Hessian-free; `xtb:none` on the same reactions for scale. Every TS judged with the exact Hessian of the "
        "HIP surface (autograd).",
    ),
    POLICY_OUTPUT: (
        "ts_search_policy",
        "Hessian policies and the two-level search, side by side",
        "Configurations (`benchmarks/ts_search.py`, `configuration()`): `anchor` = geodesic -> Sella with the "
        "exact xTB Hessian every step -> Sella IRC, no relaxation of the given ends (the quacc-style recipe); "
        "`calculator:hessian[:k]` = that level (k: a fresh Hessian every k TS steps, 0 = at the start only; "
        "approximate Hessians conditioned and guarded); `hip:...>xtb` = the two-level search refined at xTB "
        "(`@reference`: path and TS guess from xTB single points); `:noprobe` = the guard without its probe of "
        "the first Hessian's lowest mode (the default before this run). Reference cost = xTB gradients + 6N per "
        "xTB Hessian, summed over all reactions, per verified TS. Every TS is judged with the exact Hessian of its "
        "surface. Each search runs in a fresh process (the HIP checkpoint loaded before the clock starts, as in "
        "a packed job; Sella's JAX compilation for each new molecule on it); CPU = seconds of that process, "
        "which a busy machine does not inflate (this run shared the 2 cores with training and tests, so its wall "
        "times are about 1.5x those of a quiet machine).",
    ),
}
CHNO = {1, 6, 7, 8}
SET_NAMES = {
    "xtb_rx": "lib:xtb_rx CHNO (development)",
    "own": "our test split, the `own` 10 (development)",
    "heldout": "our test split less the `own` 10 (held out: never tuned on)",
}
#: calculator:hessian[:k] (k = a fresh Hessian every k RS-P-RFO steps, Bofill updates between; default 1)
DEFAULT_CONFIGS = "hip:predicted,hip:autograd,hip:none,xtb:reference,xtb:none"
ROUTES = tuple(choices(Route))
FUNNEL = (
    ("path_ok", "path (GSM/NEB)"),
    ("ts_converged", "TS converged"),
    ("one_imaginary", "one imaginary"),
    ("irc_intended", "IRC intended"),
)


def xtb_rx_reactions() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, numbers, reactant, product) of pysisyphus's lib:xtb_rx made of C, H, N, O only."""
    import pysisyphus
    from ase.io import read

    folder = Path(pysisyphus.__file__).parent / "geom_library" / "xtb_rx"
    out = []
    for path in sorted(folder.glob("*.trj")):
        frames = read(path, index=":", format="xyz")
        if set(frames[0].numbers.tolist()) <= CHNO:
            out.append((f"xtb_rx/{path.stem}", frames[0].numbers, frames[0].positions, frames[-1].positions))
    return out


def own_reactions(
    data: Path, split: str = "test", ids: Path | None = None
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Ends of the NEB of each reaction in ``split`` of our dataset (xTB-optimised minima).

    ``data`` is a generated HDF5 file or the committed campaign shards (a folder, hashes checked);
    ``ids`` a file of reaction ids (one per line, ``#`` comments) that fixes the set and its order.
    """
    import h5py

    from aiida_hip.dataset.shards import verify

    files = [data] if Path(data).is_file() else [Path(data) / s["file"] for s in verify(Path(data))["shards"]]
    wanted = None
    if ids is not None:
        wanted = [w.split("#")[0].strip() for w in Path(ids).read_text().splitlines()]
        wanted = [w for w in wanted if w]
    found = {}
    for path in files:
        with h5py.File(path, "r") as h5:
            for rid, g in sorted(h5["reactions"].items()):
                if g.attrs.get("status") != "ok" or g.attrs.get("split") != split:
                    continue
                if wanted is not None and rid not in wanted:
                    continue
                kinds = [k.decode() for k in g["kind"][()]]
                images = [i for i, k in enumerate(kinds) if k == "neb_image"]
                pos = g["positions"][()]
                name = f"own/{g.attrs['reactant_smiles']}>>{g.attrs['product_smiles']}"
                found[rid] = (name, g["numbers"][()].astype(int), pos[images[0]], pos[images[-1]])
    if wanted is None:
        return [found[k] for k in sorted(found)]
    if missing := [w for w in wanted if w not in found]:
        sys.exit(f"reactions {missing} of {ids} are not in the {split} split of {data}")
    return [found[w] for w in wanted]


def configuration(spec: str, route: str, checkpoint: str | None):
    """``(Level, TSSearchSettings)`` of a configuration name:

    - ``anchor``: the plain quacc-style recipe (geodesic -> Sella with the exact xTB Hessian every step ->
      Sella IRC), no relaxation of the given ends;
    - ``calculator:hessian[:k][:raw]``: that level; ``k`` a fresh Hessian every k TS steps (0: the start
      only); ``raw``: approximate Hessians unconditioned and unguarded (the behaviour before the Hessian
      feed); ``rsprfo``: approximate Hessians in RS-P-RFO too; ``noprobe``: the guard without its probe of
      the first Hessian's lowest mode; ``qrc``: verified by the quick reaction coordinate instead of the IRC;
      ``single``: one attempt per route with the level's Hessians (the search before attempts);
      ``levelends``: a two-level search minimises its ends from one HIP Hessian (the default before);
      HIP searches stay on the HIP surface;
    - ``hip:hessian[:k]>xtb[@reference]``: the two-level search refined at xTB (``@reference``: path and TS
      guess from xTB single points instead of HIP).
    """
    from aiida_hip.pipeline import Level, TSSearchSettings
    from aiida_hip.pipeline.conditioning import ConditioningSettings

    if spec == "anchor":
        level = Level(calculator="xtb", hessian="reference")
        return level, TSSearchSettings(route="sella", temperature=None, optimize_endpoints=False)
    spec, _, refine = spec.partition(">")
    refine, _, guess = refine.partition("@")
    calculator, hessian, *options = spec.split(":")
    level = Level(calculator=calculator, hessian=hessian, checkpoint=checkpoint)
    settings = TSSearchSettings(
        route=route, temperature=None, refine=refine or "none", guess_level=guess or "hip"
    )  # ">xtb" keeps meaning the HIP guess, whatever the product's default  # the search only
    tsopt = settings.tsopt
    for option in options:
        if option == "qrc":
            settings = replace(settings, verify="qrc")
        elif option == "single":
            routes = [r.value for r in Route(route).attempts]
            settings = replace(settings, attempts=tuple(f"{r}:highest:level" for r in routes))
        elif option == "levelends":
            settings = replace(settings, two_level_ends="level")
        elif option == "raw":
            tsopt = replace(tsopt, conditioning=ConditioningSettings(mode="off"), guard=False)
        elif option == "rsprfo":  # approximate Hessians in RS-P-RFO too (off by default)
            tsopt = replace(tsopt, rsprfo_approximate=True)
        elif option == "noprobe":  # the guard without its probe of the first Hessian's lowest mode
            tsopt = replace(tsopt, guard_probe=False)
        else:
            tsopt = replace(tsopt, hessian_recalc=int(option), approximate_recalc=int(option))
    return level, replace(settings, tsopt=tsopt)


def run_one(job: dict) -> dict:
    """One TS search in a fresh worker process; every failure becomes a row, never a crash of the benchmark.

    The clock starts after the imports and, for configurations that use HIP, after the checkpoint is
    loaded (as in a packed job, where one model serves every reaction); everything else is on it,
    Sella's JAX compilation for each new molecule included. A fresh process per search keeps one
    configuration from inheriting another's compiled functions.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    from ase import Atoms

    from aiida_hip.pipeline import ts_search
    from aiida_hip.pipeline.calculators import cached_model

    torch.set_num_threads(1)
    r = Atoms(numbers=job["numbers"], positions=job["reactant"])
    p = Atoms(numbers=job["numbers"], positions=job["product"])
    spec = job["config"].rsplit("/", 1)[-1]
    if spec.startswith("hip:") or ":predicted" in spec:
        cached_model(job["checkpoint"], "cpu")  # the same cache key as the Evaluator's
    t0, cpu0 = time.perf_counter(), time.process_time()
    row = {"reaction": job["name"], "config": job["config"], "n_atoms": len(r)}
    try:
        level, settings = configuration(job["config"].rsplit("/", 1)[-1], job["route"], job["checkpoint"])
        res = ts_search(r, p, job["workdir"], level, settings)
        row |= result_fields(res.to_dict(), res.ts.positions.tolist() if res.ts is not None else None)
    except Exception as exc:
        row |= {
            "status": "error",
            "path_ok": False,
            "ts_converged": False,
            "one_imaginary": False,
            "irc_intended": False,
            "tsopt_steps": None,
            "hessians": 0,
            "message": f"{type(exc).__name__}: {exc}",
        }
    row["wall_s"] = time.perf_counter() - t0
    # CPU seconds of this worker process (all its threads): unlike wall time, not inflated when other
    # work shares the cores, so configurations measured on a busy machine stay comparable.
    row["cpu_s"] = time.process_time() - cpu0
    return row


def collected_row(job: dict) -> dict | None:
    """The row of a job from what its search left in its folder (``result.json``, ``ts.xyz``), or None:
    lets an interrupted benchmark be summarised (``--collect``) without running anything again."""
    folder = Path(job["workdir"])
    if not (folder / "result.json").is_file():
        return None
    from ase.io import read

    d = json.loads((folder / "result.json").read_text())
    ts = read(folder / "ts.xyz").positions.tolist() if (folder / "ts.xyz").is_file() else None
    row = {"reaction": job["name"], "config": job["config"], "n_atoms": len(job["numbers"])}
    return row | result_fields(d, ts if d["ts_found"] else None) | {"wall_s": d["wall_time_s"]["total"]}


def result_fields(d: dict, ts: list | None) -> dict:
    """A row's funnel fields from a search's ``result.json`` content ``d`` (``ts``: TS positions, A)."""
    return {
        "status": d["status"],
        "path_ok": Outcome(d["status"]).found_path,
        "ts_converged": Outcome(d["status"]).converged_ts,
        "one_imaginary": bool(d["ts_found"]),
        "irc_intended": bool(d["irc_intended"]),
        "tsopt_steps": d["n_tsopt_steps"],
        "hessians": d["n_hessian_evaluations"],
        "barrier_ev": d["barrier_forward_ev"],
        "imaginary_cm1": d["imaginary_frequency_cm1"],
        "ts": ts,
        "message": d["message"][:300],
        "route_used": d.get("route"),
        "n_attempts": len((d.get("stages") or {}).get("attempts") or []) or None,
        "endpoints_s": (d.get("wall_time_s") or {}).get("endpoints", 0.0),
        "reference_gradients": (d.get("reference_cost") or {}).get("gradients"),
        "reference_hessians": (d.get("reference_cost") or {}).get("hessians"),
        "reference_cost": (d.get("reference_cost") or {}).get("gradient_equivalents"),
        "guard_tripped": any(
            (stage or {}).get("hessian_feed", {}) and stage["hessian_feed"].get("guard_tripped_at") is not None
            for key, stage in (d.get("stages") or {}).items()
            if key.startswith("tsopt") and isinstance(stage, dict)
        ),
        "hip_ts_rmsd_a": d.get("hip_ts_rmsd_a"),
        **attempt_fields(d.get("attempts") or (d.get("stages") or {}).get("attempts") or []),
    }


def attempt_fields(attempts: list[dict]) -> dict:
    """What the attempts of one search did: how many ran, which verified, the first one's verdict."""
    ran = [a for a in attempts if not a.get("skipped")]
    first = ran[0] if ran else {}
    return {
        "attempts_run": len(ran),
        "verified_by": next((a.get("attempt") for a in ran if a.get("status") == "success"), None),
        "first_attempt_status": first.get("status"),
        "first_attempt_verified_stage": first.get("stage_reached") == "irc",
        "first_attempt_cost": first.get("reference_gradient_equivalents"),
        "model_hessians_used": any(a.get("model_hessians_used") for a in ran),
    }


def per_reaction_markdown(rows: list[dict], configs: list[str]) -> str:
    """One row per reaction: each configuration's outcome, attempts run and reference cost."""
    by = {}
    for r in rows:
        by.setdefault(r["reaction"], {})[r["config"]] = r
    lines = ["| reaction | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
    for reaction in sorted(by):
        cells = []
        for config in configs:
            r = by[reaction].get(config)
            if r is None:
                cells.append("-")
                continue
            mark = "**verified**" if r["irc_intended"] else r["status"]
            cells.append(f"{mark}, {r.get('attempts_run') or 1} att., {r.get('reference_cost') or 0}")
        lines.append(f"| {reaction} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verification_agreement(rows: list[dict], pairs: list[tuple[str, str]]) -> dict:
    """QRC against IRC on the same TSs: the first attempt of two configurations that differ only in how they
    verify (same ends, path and TS optimisation, so the same TS), where both reached the verification."""
    verdicts = []
    for qrc, irc in pairs:
        a = {r["reaction"]: r for r in rows if r["config"] == qrc}
        b = {r["reaction"]: r for r in rows if r["config"] == irc}
        for reaction in a.keys() & b.keys():
            x, y = a[reaction], b[reaction]
            if x.get("first_attempt_verified_stage") and y.get("first_attempt_verified_stage"):
                verdicts.append(
                    {
                        "reaction": reaction,
                        "pair": f"{qrc} / {irc}",
                        "qrc": x["first_attempt_status"],
                        "irc": y["first_attempt_status"],
                        "qrc_cost": x.get("first_attempt_cost"),
                        "irc_cost": y.get("first_attempt_cost"),
                    }
                )
    agree = sum((v["qrc"] == "success") == (v["irc"] == "success") for v in verdicts)
    return {
        "n": len(verdicts),
        "agree": agree,
        "fraction": agree / len(verdicts) if verdicts else None,
        "cases": verdicts,
    }


def auto_rows(rows: list[dict], configs: list[str]) -> tuple[list[dict], list[str]]:
    """Rows of ``auto`` in both orders, put together from the single-route rows of the same reactions.

    ``ts_search`` with ``route='auto'`` optimises the ends once, runs the first route and, unless that
    one ends in ``success``, the second: so its outcome on a reaction is the first route's row when that
    succeeded, else the second's, at the cost of both minus the second endpoint optimisation. Composing
    the rows lets one run compare both orders; ``--routes auto`` runs the real thing (as a check)."""
    derived, labels = [], []
    specs = [c.split("/", 1)[1] for c in configs if c.startswith("pysisyphus/")]
    for spec in (s for s in specs if f"sella/{s}" in configs):
        pair = ("pysisyphus", "sella")
        by_route = {route: {r["reaction"]: r for r in rows if r["config"] == f"{route}/{spec}"} for route in pair}
        for first, second in (pair, pair[::-1]):
            label = f"auto({first},{second})/{spec}"
            labels.append(label)
            for reaction in by_route[first].keys() & by_route[second].keys():
                a, b = by_route[first][reaction], by_route[second][reaction]
                if a["status"] == "success":
                    derived.append(a | {"config": label, "n_attempts": 1, "route_used": first})
                    continue
                derived.append(
                    b
                    | {
                        "config": label,
                        "n_attempts": 2,
                        "route_used": second,
                        "hessians": (a["hessians"] or 0) + (b["hessians"] or 0),
                        "wall_s": a["wall_s"] + b["wall_s"] - (b.get("endpoints_s") or 0.0),
                    }
                )
    return derived, labels


def summarise(rows: list[dict], configs: list[str]) -> dict:
    out = {}
    for config in configs:
        sel = [r for r in rows if r["config"] == config]
        steps = [r["tsopt_steps"] for r in sel if r["ts_converged"] and r["tsopt_steps"] is not None]
        out[config] = {
            "reactions": len(sel),
            **{key: int(sum(bool(r[key]) for r in sel)) for key, _ in FUNNEL},
            "median_tsopt_steps": statistics.median(steps) if steps else None,
            "median_hessians": statistics.median([r["hessians"] or 0 for r in sel]) if sel else None,
            "median_wall_s": statistics.median([r["wall_s"] for r in sel]) if sel else None,
            "total_wall_s": sum(r["wall_s"] for r in sel),
            "median_cpu_s": statistics.median(cpu) if (cpu := [r["cpu_s"] for r in sel if "cpu_s" in r]) else None,
        }
        if config.startswith("auto"):
            out[config]["second_route_used"] = sum((r.get("n_attempts") or 1) > 1 for r in sel)
        out[config] |= cost_fields(sel, rows, config)
    # How close the HIP-surface TSs are to the xTB ones (same route), where both were found.
    from aiida_hip.chem.geometry import aligned_rmsd

    for config in configs:
        route, _, spec = config.rpartition("/")
        if not spec.startswith("hip:"):
            continue
        reference = f"{route}/xtb:reference" if route else "xtb:reference"
        xtb = {r["reaction"]: r for r in rows if r["config"] == reference and r["one_imaginary"]}
        if xtb:
            d = [
                aligned_rmsd(np.array(r["ts"]), np.array(xtb[r["reaction"]]["ts"]))
                for r in rows
                if r["config"] == config and r["one_imaginary"] and r["reaction"] in xtb
            ]
            out[config]["median_rmsd_to_xtb_ts_a"] = float(np.median(d)) if d else None
            out[config]["n_compared_to_xtb"] = len(d)
    return out


def cost_fields(sel: list[dict], rows: list[dict], config: str) -> dict:
    """Reference-level cost and accuracy of one configuration's rows ``sel``: median reference gradients and
    Hessians, reference cost (gradients + 6N per reference Hessian) per verified TS, TSs within 0.1 A of the
    ``xtb:reference`` TS of the same route and reaction, guard trips."""
    from aiida_hip.chem.geometry import aligned_rmsd

    def median(key):
        values = [r[key] for r in sel if r.get(key) is not None]
        return statistics.median(values) if values else None

    verified = sum(bool(r["irc_intended"]) for r in sel)
    total = sum(r.get("reference_cost") or 0 for r in sel)
    route = config.rpartition("/")[0]
    reference = f"{route}/xtb:reference" if route else "xtb:reference"
    xtb = {r["reaction"]: r["ts"] for r in rows if r["config"] == reference and r["one_imaginary"] and r.get("ts")}
    close = sum(
        1
        for r in sel
        if r["one_imaginary"]
        and r.get("ts")
        and r["reaction"] in xtb
        and aligned_rmsd(np.array(r["ts"]), np.array(xtb[r["reaction"]])) < 0.1
    )
    return {
        "median_reference_gradients": median("reference_gradients"),
        "median_reference_hessians": median("reference_hessians"),
        "reference_cost_per_verified": total / verified if verified else None,
        "ts_within_0p1_of_xtb": close if xtb else None,
        "guard_tripped": sum(bool(r.get("guard_tripped")) for r in sel),
    }


def cost_markdown(summary: dict) -> str:
    """The side-by-side table of the Hessian policies and the two-level search."""
    lines = [
        "| configuration | reactions | IRC intended | TS < 0.1 A of xTB TS | median TS steps | median ref. gradients "
        "| median ref. Hessians | ref. cost per verified TS | median wall (s) | median CPU (s) | guard tripped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value, spec="g"):
        return "-" if value is None else format(value, spec)

    for config, s in summary.items():
        lines.append(
            f"| {config} | {s['reactions']} | {s['irc_intended']} | {fmt(s.get('ts_within_0p1_of_xtb'))} | "
            f"{fmt(s['median_tsopt_steps'])} | {fmt(s.get('median_reference_gradients'))} | "
            f"{fmt(s.get('median_reference_hessians'))} | {fmt(s.get('reference_cost_per_verified'), '.0f')} | "
            f"{fmt(s['median_wall_s'], '.1f')} | {fmt(s.get('median_cpu_s'), '.1f')} | {s.get('guard_tripped', 0)} |"
        )
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    head = "| configuration | reactions | " + " | ".join(label for _, label in FUNNEL)
    head += " | median TS steps | median Hessians | median wall (s) | total wall (s) | median RMSD to xTB TS (A) |"
    lines = [head, "|" + "---|" * (len(FUNNEL) + 7)]
    for config, s in summary.items():
        rmsd = s.get("median_rmsd_to_xtb_ts_a")
        lines.append(
            f"| {config} | {s['reactions']} | "
            + " | ".join(str(s[k]) for k, _ in FUNNEL)
            + f" | {s['median_tsopt_steps'] if s['median_tsopt_steps'] is not None else '-'}"
            + f" | {s['median_hessians']:g} | {s['median_wall_s']:.1f} | {s['total_wall_s']:.0f}"
            + f" | {'-' if rmsd is None else f'{rmsd:.3f}'} |"
        )
    fallbacks = [
        f"{c} {s['second_route_used']}/{s['reactions']}" for c, s in summary.items() if "second_route_used" in s
    ]
    if fallbacks:
        lines.append("\nSecond route needed (auto): " + "; ".join(fallbacks) + ".")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(summary)
    x = np.arange(len(FUNNEL))
    width = 0.8 / max(len(configs), 1)
    fig, ax = plt.subplots(figsize=(11, 4))
    for k, config in enumerate(configs):
        ax.bar(x + k * width, [summary[config][key] for key, _ in FUNNEL], width, label=config)
    ax.set_xticks(x + 0.4 - width / 2, [label for _, label in FUNNEL])
    ax.set_ylabel("reactions")
    ax.set_title("TS-search success funnel per Hessian source")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="xtb_rx,own")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma-separated; see configuration()")
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT / "data" / "campaign" / "shards",
        help="dataset whose test split gives our reactions: the committed campaign shards (default) or an "
        "HDF5 file from `aiida-hip data generate --split test`",
    )
    parser.add_argument(
        "--own-ids",
        type=Path,
        default=OWN_IDS,
        help="reaction ids of the `own` set, in order (default: the 10 of every earlier report); 'all' for the "
        "whole test split",
    )
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--max-reactions", type=int, default=20, help="Per set.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="earlier result JSONs whose rows join this table (e.g. the xTB runs)",
    )
    parser.add_argument(
        "--route",
        default="pysisyphus",
        choices=ROUTES,
        help="pysisyphus compares Hessian sources on RS-P-RFO alone (default)",
    )
    parser.add_argument(
        "--routes",
        default=None,
        help="comma-separated routes (pysisyphus,sella,auto): every configuration on each, labelled route/config",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_ts_search")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: summarise the searches an earlier (interrupted) run finished in --workdir",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the searches an earlier run finished in --workdir, run only the others",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--agreement",
        default=None,
        help="comma-separated QRC_CONFIG/IRC_CONFIG pairs whose first attempts share a TS: the verdicts compared",
    )
    args = parser.parse_args(argv)

    reactions = []
    if "xtb_rx" in args.sets:
        reactions += xtb_rx_reactions()[: args.max_reactions]
    if "heldout" in args.sets:
        reactions += [
            (name.replace("own/", "heldout/"), z, r, p) for name, z, r, p in own_reactions(args.data, ids=HELDOUT_IDS)
        ][: args.max_reactions]
    if "own" in args.sets.split(","):
        if not args.data.exists():
            sys.exit(f"{args.data} not found: generate it (aiida-hip data generate) or use --sets xtb_rx")
        ids = None if str(args.own_ids) == "all" else args.own_ids
        reactions += own_reactions(args.data, ids=ids)[: args.max_reactions]
    routes = args.routes.split(",") if args.routes else [args.route]
    if unknown := set(routes) - set(ROUTES):
        parser.error(f"unknown route(s) {sorted(unknown)}: choose from {', '.join(ROUTES)}")
    labels = [f"{route}/{c}" if len(routes) > 1 else c for route in routes for c in args.configs.split(",")]
    configs = labels if reactions else []  # --sets none: only merge earlier results
    jobs = [
        {
            "name": name,
            "numbers": z,
            "reactant": r,
            "product": p,
            "config": c,
            "checkpoint": args.checkpoint,
            "route": c.split("/")[0] if len(routes) > 1 else args.route,
            "workdir": str(
                args.workdir / c.replace(":", "_").replace("/", "_") / name.replace("/", "_").replace(">", "-")[:80]
            ),
        }
        for name, z, r, p in reactions
        for c in configs
    ]
    print(f"{len(reactions)} reactions x {len(configs)} configurations on {args.workers} processes")
    rows = []
    if args.collect:  # an interrupted run: what finished, compared on the reactions every configuration finished
        rows = [row for row in map(collected_row, jobs) if row is not None]
        args.merge.append(None)
        jobs = []
    elif args.resume:  # what finished is reused, the rest runs
        done = {id(job): collected_row(job) for job in jobs}
        rows = [row for row in done.values() if row is not None]
        jobs = [job for job in jobs if done[id(job)] is None]
    context = multiprocessing.get_context("spawn")  # tblite + fork can hang
    with ProcessPoolExecutor(args.workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_one, job) for job in jobs]
        for k, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            rows.append(row)
            print(
                f"[{k}/{len(jobs)}] {row['config']:<18} {row['reaction'][:50]:<50} {row['status']:<22} "
                f"{row['wall_s']:.0f} s",
                flush=True,
            )
    for path in args.merge:
        if path is None:
            continue
        earlier = json.loads(path.read_text())  # its composed auto(...) rows are composed again below
        rows += [r for r in earlier["rows"] if not r["config"].startswith("auto(")]
        configs = [c for c in earlier["configs"] if c not in configs and not c.startswith("auto(")] + configs
    if args.merge:  # compare configurations on the reactions every one of them ran
        common = set.intersection(*({r["reaction"] for r in rows if r["config"] == c} for c in configs))
        rows = [r for r in rows if r["reaction"] in common]
    derived, derived_configs = auto_rows(rows, configs)
    rows, configs = rows + derived, configs + [c for c in derived_configs if c not in configs]
    summary = summarise(rows, configs)
    table = markdown(summary) + "\n\n" + cost_markdown(summary)
    table += "\n\nPer reaction (outcome, attempts run, reference cost in gradient equivalents):\n\n"
    table += per_reaction_markdown(rows, configs)
    agreement = None
    if args.agreement:
        pairs = [tuple(pair.split("/", 1)) for pair in args.agreement.split(",")]
        agreement = verification_agreement(rows, pairs)
        qrc_cost = [c["qrc_cost"] for c in agreement["cases"] if c["qrc_cost"] is not None]
        irc_cost = [c["irc_cost"] for c in agreement["cases"] if c["irc_cost"] is not None]
        table += (
            f"\n\nQRC against IRC on the same TSs (first attempts): {agreement['agree']} of {agreement['n']} verdicts "
            f"agree; median reference cost of that attempt {statistics.median(qrc_cost) if qrc_cost else '-'} (QRC) "
            f"vs {statistics.median(irc_cost) if irc_cost else '-'} (IRC) gradient equivalents."
        )
        table += "".join(
            f"\n- disagree: {c['reaction']} ({c['pair']}): QRC {c['qrc']}, IRC {c['irc']}"
            for c in agreement["cases"]
            if (c["qrc"] == "success") != (c["irc"] == "success")
        )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    routes = sorted({c.rpartition("/")[0] or args.route for c in configs}) or routes
    payload = {
        "sets": args.sets,
        "configs": configs,
        "route": ",".join(routes),
        "summary": summary,
        "rows": rows,
        "verification_agreement": agreement,
    }
    meta = metadata(
        checkpoint=args.checkpoint,
        level="HIP (shipped checkpoint) or GFN2-xTB energies and forces; Hessian source per configuration",
        data=f"{len({r['reaction'] for r in rows})} reactions: "
        + ", ".join(SET_NAMES.get(name, name) for name in args.sets.split(",")),
        route=",".join(routes),
        processes=args.workers,
    )
    payload["meta"] = meta
    args.output.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=float))
    args.output.with_suffix(".md").write_text(table + "\n")
    plot(summary, args.output.with_suffix(".png"))
    report = REPORT_SECTIONS.get(args.output.resolve())
    if report is not None:
        key, title, note = report
        update_report(key, f"## {title}\n\n" + caption(meta) + "\n\n" + table + "\n\n" + note)


if __name__ == "__main__":
    main()
