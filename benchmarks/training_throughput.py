"""Training throughput on the CPU, per stage: geometries per CPU-second, with and without each speed-up.

    python benchmarks/training_throughput.py [--steps 30] [--batch-size 16] [--batch-factors 2 4]

One core (``torch.set_num_threads(1)``, as the campaign), the shipped model in float32, batches of the
committed campaign shards' validation split, AdamW steps exactly as the campaign takes them. CPU time
(``time.process_time``), not wall time, so that a busy machine does not bias the comparison; every row is
measured in the same run. Rows: each stage per step; the Hessian stage on cached backbone features, with
and without the sign term; the stages with backbone gradients on batches ``--batch-factors`` times larger
(the same geometries in fewer steps: Python and dispatch overhead per step amortised). A cProfile of each
stage gives where the time goes (top entries by own time).
Writes ``benchmarks/results/training_throughput.{json,md}``.

``--recipes`` instead compares the recipes of the scaling study (issue 28) step for step: today's
campaign step (``end_to_end`` with the sign term: force double backward), ``hessian_first`` (one
backward pass) with the shipped head and with the sum-rule head, and ``hessian_first`` under
``torch.compile`` (possible now that no second derivative is taken); compile time is reported apart.
Writes ``benchmarks/results/training_throughput_recipes.{json,md}``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip import load_model
from aiida_hip.hip.data import collate
from aiida_hip.hip.features import BackboneFeatures
from aiida_hip.hip.losses import weighted_loss
from aiida_hip.hip.train import TrainSettings, stage_forward, trainable_parameters

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "training_throughput"


def steps(
    model,
    samples,
    batches,
    stage: str,
    features: BackboneFeatures | None = None,
    sign_weight: float = 0.0,
    forward=None,
) -> float:
    """Run the optimiser steps of ``batches``; returns CPU seconds. ``forward(data)``: instead of ``stage_forward``."""
    params = trainable_parameters(model, stage)
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    weights = TrainSettings(stage=stage, sign_weight=sign_weight).weights()
    model.train()
    t0 = time.process_time()
    for idx in batches:
        chunk = [samples[i] for i in idx]
        data, target = collate(chunk, model.dtype, "cpu")
        if forward is not None:
            pred = forward(data)
        else:
            pred = stage_forward(model, data, stage, True, None if features is None else features.gather(idx))
        loss, _ = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights, data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    return time.process_time() - t0


def profile_top(fn, n: int = 8) -> list[dict]:
    """The ``n`` entries with the most own time of one call of ``fn``."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{Path(k[0]).name}:{k[2]}", "own_s": v[2], "share": v[2] / total} for k, v in rows]


def recipe_rows(samples, batches) -> tuple[list[dict], dict]:
    """Geometries per CPU-second of each recipe's training step, on the same batches, one run."""
    from aiida_hip.hip.checkpoints import convert_model

    n = sum(len(b) for b in batches)
    model = load_model(None, device="cpu", dtype=torch.float32)
    summed = convert_model(model, hessian_sum_rule=True)  # in memory, as the campaign converts it
    rows = []
    for name, m, stage in (
        ("today: end_to_end + sign (force double backward)", model, "end_to_end"),
        ("hessian_first + sign, shipped head", model, "hessian_first"),
        ("hessian_first + sign, sum-rule head", summed, "hessian_first"),
    ):
        steps(m, samples, batches[:2], stage, sign_weight=1.0)  # warm-up
        rows.append({"recipe": name, "geoms_per_cpu_s": n / steps(m, samples, batches, stage, sign_weight=1.0)})
    compiled = {"error": None}
    try:
        fn = torch.compile(summed, dynamic=True)

        def forward(data):
            return fn(data, compute_forces=False, compute_hessian=True, create_graph=True)

        t0 = time.process_time()
        steps(summed, samples, batches[:3], "hessian_first", sign_weight=1.0, forward=forward)
        compiled["warmup_cpu_s"] = time.process_time() - t0
        rate = n / steps(summed, samples, batches, "hessian_first", sign_weight=1.0, forward=forward)
        rows.append(
            {"recipe": "hessian_first + sign, sum-rule head, torch.compile(dynamic=True)", "geoms_per_cpu_s": rate}
        )
    except Exception as exc:  # the failure is the measurement
        compiled["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return rows, compiled


def recipes_markdown(rows: list[dict], compiled: dict) -> str:
    base = rows[0]["geoms_per_cpu_s"]
    lines = ["| training step | geometries per CPU-second | vs today's step |", "|---|---|---|"]
    lines += [f"| {r['recipe']} | {r['geoms_per_cpu_s']:.1f} | {r['geoms_per_cpu_s'] / base:.2f}x |" for r in rows]
    if compiled.get("error"):
        lines += ["", f"torch.compile failed: `{compiled['error']}`"]
    elif "warmup_cpu_s" in compiled:
        lines += ["", f"torch.compile: {compiled['warmup_cpu_s']:.0f} CPU-s for the first three (compiling) steps."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--batch-factors", type=int, nargs="*", default=[2, 4], help="Also time batches this many times larger."
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--recipes", action="store_true", help="Compare the scaling study's recipes only.")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    samples = load_shards(ROOT / "data" / "campaign" / "shards", split="val")
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(samples), args.batch_size, replace=False) for _ in range(args.steps)]
    if args.recipes:
        rows, compiled = recipe_rows(samples, batches)
        out = args.output.with_name(args.output.name + "_recipes")
        out.with_suffix(".json").write_text(
            json.dumps(
                {"rows": rows, "compile": compiled, "steps": args.steps, "batch_size": args.batch_size, "threads": 1},
                indent=1,
            )
        )
        out.with_suffix(".md").write_text(recipes_markdown(rows, compiled))
        print(recipes_markdown(rows, compiled))
        return
    model = load_model(None, device="cpu", dtype=torch.float32)
    steps(model, samples, batches[:2], "energy_forces")  # warm-up
    n = args.steps * args.batch_size
    rows = []
    for stage in ("energy_forces", "hessian", "end_to_end"):
        rows.append(
            {"stage": stage, "variant": "per step", "geoms_per_cpu_s": n / steps(model, samples, batches, stage)}
        )
    t0 = time.process_time()
    features = BackboneFeatures(model, samples)
    build = time.process_time() - t0
    cached = n / steps(model, samples, batches, "hessian", features)
    rows.append({"stage": "hessian", "variant": "backbone features cached", "geoms_per_cpu_s": cached})
    signed = n / steps(model, samples, batches, "hessian", features, sign_weight=1.0)
    rows.append({"stage": "hessian", "variant": "cached + sign term", "geoms_per_cpu_s": signed})
    for factor in args.batch_factors:  # fewer, larger batches: the same geometries per row
        big = [np.concatenate(batches[k : k + factor]) for k in range(0, len(batches) - factor + 1, factor)]
        seen = sum(len(b) for b in big)
        for stage in ("energy_forces", "end_to_end"):
            rate = seen / steps(model, samples, big, stage)
            rows.append({"stage": stage, "variant": f"batch {factor * args.batch_size}", "geoms_per_cpu_s": rate})
    profiles = {
        stage: profile_top(lambda stage=stage: steps(model, samples, batches[:10], stage))
        for stage in ("energy_forces", "hessian")
    }
    result = {
        "rows": rows,
        "cache": {
            "geometries": len(features),
            "mib": features.nbytes / 2**20,
            "build_geoms_per_cpu_s": len(samples) / build,
        },
        "profiles": profiles,
        "meta": {"steps": args.steps, "batch_size": args.batch_size, "threads": 1, "dtype": "float32"},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    base = {r["stage"]: r["geoms_per_cpu_s"] for r in result["rows"] if r["variant"] == "per step"}
    lines = ["| stage | variant | geometries per CPU-second | vs per step |", "|---|---|---|---|"]
    for r in result["rows"]:
        rate = r["geoms_per_cpu_s"]
        lines.append(f"| {r['stage']} | {r['variant']} | {rate:.1f} | {rate / base[r['stage']]:.2f}x |")
    c = result["cache"]
    lines += [
        "",
        f"Feature cache: {c['geometries']} geometries, {c['mib']:.1f} MiB, built at {c['build_geoms_per_cpu_s']:.0f}"
        " geometries per CPU-second.",
    ]
    for stage, top in result["profiles"].items():
        lines += ["", f"Where a {stage} step's CPU time goes (own time):", ""]
        lines += [f"- `{t['function']}`: {100 * t['share']:.0f} %" for t in top]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
