"""Loss ablation for the Hessian head (issue 20, ask 5): each candidate loss against the current one.

    python benchmarks/loss_ablation.py --state data/campaign/state.pt [--steps 600] [--fresh-steps 1500]

Two experiments, each at equal optimiser steps on the same batches, evaluated on the same held-out
geometries (test split of ``data/campaign/shards``) with the campaign's model-quality metrics:

1. *Fine-tuning* from the campaign state (end of its Hessian-head stage): ``current`` (Hessian MAE +
   Cartesian subspace loss), ``low_subspace`` (+ the subspace loss on the projected, mass-weighted
   Hessian, weighted towards the lowest modes), ``sign`` (+ the hinge on the imaginary-mode count),
   ``low_subspace+sign`` and ``end_to_end`` (current loss, backbone and head together, with energy and
   force terms). Head-only rows train on cached backbone features, as the campaign does.
2. *Fresh head*: the head re-initialised and trained from scratch to predict the whole Hessian
   (``fresh_full``) or its difference to the Lindh model Hessian (``fresh_lindh_delta``, evaluated as
   prediction + Lindh). The Lindh Hessian comes from pysisyphus (0.1 s a geometry), so this experiment
   draws from a fixed subset of the training geometries, the same for both rows.

One core. Writes ``benchmarks/results/loss_ablation.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import update_report

from aiida_hip.chem.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR2_TO_EV_PER_ANGSTROM2
from aiida_hip.dataset.campaign import EF_ROOT, PromotionRule, training_data
from aiida_hip.dataset.campaign import ROOT as SHARDS
from aiida_hip.dataset.evaluate import comparison_markdown, evaluation_subset, model_metrics
from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip.campaign import CampaignState
from aiida_hip.hip.data import Sample, collate
from aiida_hip.hip.features import BackboneFeatures
from aiida_hip.hip.losses import weighted_loss
from aiida_hip.hip.model import HIPModel
from aiida_hip.hip.train import stage_forward, trainable_parameters

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "loss_ablation"

#: Fine-tuning rows: (stage, extra TrainSettings fields).
FINE_TUNE = {
    "current": ("hessian", {}),
    "low_subspace": ("hessian", {"low_subspace_weight": 1.0}),
    "sign": ("hessian", {"sign_weight": 1.0}),
    "low_subspace+sign": ("hessian", {"low_subspace_weight": 1.0, "sign_weight": 1.0}),
    "end_to_end": ("end_to_end", {}),
    "end_to_end+ef": ("end_to_end", {}),  # every second step an E+F batch from all labelled geometries
}

#: Rows whose every ``EF_EVERY``-th step is an energy+force batch (the campaign's ``ef_every``).
EF_EVERY = {"end_to_end+ef": 2}


def lindh_hessian(sample: Sample) -> np.ndarray:
    """The Lindh model Hessian (eV/A^2) of a geometry, from pysisyphus."""
    from ase.data import chemical_symbols
    from pysisyphus.Geometry import Geometry

    from aiida_hip.pipeline.common import model_guess_hessian

    geom = Geometry([chemical_symbols[z] for z in sample.numbers], sample.positions.reshape(-1) / BOHR_TO_ANGSTROM)
    with contextlib.redirect_stdout(io.StringIO()):
        return model_guess_hessian(geom) * HARTREE_PER_BOHR2_TO_EV_PER_ANGSTROM2


def with_lindh_delta(samples: list[Sample]) -> list[Sample]:
    """Copies whose Hessian label is the difference to the Lindh Hessian."""
    return [replace(s, hessian=s.hessian - lindh_hessian(s)) for s in samples]


class PlusLindh:
    """A model whose Hessian is the head's prediction plus the Lindh Hessian (for the metrics)."""

    def __init__(self, model: HIPModel) -> None:
        self.model = model

    def predict(self, numbers, positions, hessian="predicted"):
        out = self.model.predict(numbers, positions, hessian=hessian)
        s = Sample(np.asarray(numbers), np.asarray(positions), 0.0, np.zeros((len(numbers), 3)), None, "", "")
        out["hessian"] = out["hessian"] + lindh_hessian(s)
        return out

    def predict_batch(self, molecules, hessian=None):
        return self.model.predict_batch(molecules, hessian=hessian)


def train_steps(
    model: HIPModel,
    samples: list[Sample],
    order: list[np.ndarray],
    stage: str,
    settings,
    lr: float,
    features: BackboneFeatures | None,
    ef: tuple[list[Sample], list[np.ndarray], int] | None = None,
) -> float:
    """AdamW steps (constant ``lr``) on the batches of ``order``; returns CPU seconds.

    ``ef``: (pool, batches, every): every ``every``-th step trains on the pool's energies and forces instead.
    """
    params = trainable_parameters(model, stage)
    optimizer = torch.optim.AdamW(params, lr=lr)
    weights = settings.weights()
    model.train()
    t0 = time.process_time()
    ef_weights = replace(settings, stage="energy_forces").weights()
    for step, idx in enumerate(order):
        kind, pool, w = stage, samples, weights
        if ef is not None and (step + 1) % ef[2] == 0:
            kind, pool, w, idx = "energy_forces", ef[0], ef_weights, ef[1][step]
        chunk = [pool[i] for i in idx]
        data, target = collate(chunk, model.dtype, "cpu")
        feats = features.gather(idx) if features is not None and kind == "hessian" else None
        pred = stage_forward(model, data, kind, True, feats)
        loss, _ = weighted_loss(pred, target, [s.n_atoms for s in chunk], w, data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return time.process_time() - t0


def fresh_head(model: HIPModel, seed: int, hessian_rms: float) -> HIPModel:
    """``model`` with a re-initialised Hessian head (seeded) and Hessian scale ``hessian_rms``."""
    torch.manual_seed(seed)
    fresh = HIPModel(model.config).to(model.dtype)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("hessian_head.")}
    fresh.load_state_dict(state, strict=False)
    with torch.no_grad():
        fresh.hessian_scale.fill_(hessian_rms)
    return fresh


def rms(samples: list[Sample]) -> float:
    return float(np.sqrt(np.mean(np.concatenate([s.hessian.reshape(-1) for s in samples]) ** 2)))


def row(name: str, metrics: dict, steps: int, cpu_s: float) -> dict:
    return {"name": name, "steps": steps, "cpu_s": round(cpu_s, 1), **{k: v for k, v in metrics.items()}}


def verdict(rows: list[dict], baseline: str) -> list[str]:
    """Each row against ``baseline`` by the campaign's promotion rule: measures better or not."""
    base = next(r for r in rows if r["name"] == baseline)
    rule = PromotionRule()
    lines = [f"| row | vs `{baseline}`: Hessian MAE | force MAE | right imaginary counts | measures better |"]
    lines.append("|---|---|---|---|---|")
    for r in rows:
        if r["name"] in (baseline, "start"):
            continue
        right = [sum(c["correct"] for c in m["imag_counts"].values()) for m in (base, r)]
        total = sum(c["total"] for c in r["imag_counts"].values())
        better, _ = rule.decide(r, base)
        lines.append(
            f"| {r['name']} | {100 * (r['hessian_mae'] / base['hessian_mae'] - 1):+.1f} % | "
            f"{100 * (r['force_mae'] / base['force_mae'] - 1):+.1f} % | {right[0]} -> {right[1]} of {total} | "
            f"{'yes' if better else 'no'} |"
        )
    return lines


def markdown(result: dict) -> str:
    lines = [
        f"Start: campaign state at step {result['start_step']} ({result['start_stage']}); "
        f"{result['n_test']} test geometries from {result['n_test_reactions']} held-out reactions; "
        f"batch {result['batch_size']}, one core.",
        "",
        f"**Fine-tuning, {result['steps']} steps each** (lr {result['lr']:g}; head-only rows on cached features):",
        "",
    ]
    fine = {r["name"]: r for r in result["fine_tune"]}
    lines.append(comparison_markdown(fine).rstrip())
    lines += ["", "| row | CPU s | eigenvalue MAE [eV/A^2/amu] |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['cpu_s']} | {r['eigenvalue_mae']:.4f} |" for r in result["fine_tune"]]
    lines += ["", "Against `current` by the campaign's promotion rule (`PromotionRule`):", ""]
    lines += verdict(result["fine_tune"], "current")
    lines += [
        "",
        f"**Fresh head, {result['fresh_steps']} steps each** on {result['fresh_pool']} training geometries "
        f"(lr {result['fresh_lr']:g}):",
        "",
        comparison_markdown({r["name"]: r for r in result["fresh"]}).rstrip(),
        "",
    ]
    if result["fresh"]:
        lines += [*verdict(result["fresh"], "fresh_full"), ""]
    return "\n".join(lines) + "\n"


HEADING = """## Loss ablation for the Hessian head (issue 20, ask 5)

`python benchmarks/loss_ablation.py --state runs/ablation/start_9000.pt --steps 600 --fresh-steps 1500`
(then `--rows end_to_end+ef --append`): every row from the same campaign state, on the same batches, one
core; metrics on the same held-out test geometries as the campaign's promotion."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=ROOT / "data" / "campaign" / "state.pt")
    parser.add_argument("--steps", type=int, default=600, help="Fine-tuning steps per row.")
    parser.add_argument("--lr", type=float, default=2.5e-4, help="Fine-tuning learning rate (constant).")
    parser.add_argument("--fresh-steps", type=int, default=1500, help="Steps per fresh-head row (0: skip).")
    parser.add_argument("--fresh-lr", type=float, default=1e-3)
    parser.add_argument("--fresh-pool", type=int, default=3000, help="Training geometries of the fresh rows.")
    parser.add_argument("--test-samples", type=int, default=200)
    parser.add_argument("--rows", default=",".join(FINE_TUNE), help="Fine-tuning rows to run.")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--append", action="store_true", help="Add (or redo) rows of an existing result.")
    parser.add_argument("--render", action="store_true", help="Only rewrite the tables from the JSON.")
    args = parser.parse_args(argv)
    if args.render:
        return render(json.loads(args.output.with_suffix(".json").read_text()), args.output)
    torch.set_num_threads(1)
    state = CampaignState.load(args.state)
    config = state.campaign_config()
    base = state.build_model(dtype=torch.float32)
    train, _, ef_train, _, _ = training_data(SHARDS, EF_ROOT)
    ef_pool = train + ef_train
    test = evaluation_subset(load_shards(SHARDS, "test"), args.test_samples)
    rng = np.random.default_rng(20261130)
    order = [rng.choice(len(train), config.batch_size, replace=False) for _ in range(args.steps)]
    ef_order = [rng.choice(len(ef_pool), config.batch_size, replace=False) for _ in range(args.steps)]
    t0 = time.perf_counter()
    features = BackboneFeatures(base, train)
    print(f"backbone features of {len(train)} geometries in {time.perf_counter() - t0:.0f} s", flush=True)
    previous = json.loads(args.output.with_suffix(".json").read_text()) if args.append else None
    result = previous or {
        "start_step": state.step,
        "start_stage": state.stage,
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": config.batch_size,
        "n_test": len(test),
        "n_test_reactions": len({s.reaction for s in test}),
        "fine_tune": [row("start", model_metrics(base, test), 0, 0.0)],
        "fresh": [],
    }
    if previous and (previous["start_step"], previous["steps"], previous["lr"]) != (state.step, args.steps, args.lr):
        raise SystemExit(f"--append: {args.output}.json was run from another state, step count or lr")
    print(result["fine_tune"][0], flush=True)
    for name in args.rows.split(","):
        stage, extra = FINE_TUNE[name]
        model = copy.deepcopy(base)
        settings = replace(config.settings(stage), **extra)
        ef = (ef_pool, ef_order, EF_EVERY[name]) if name in EF_EVERY else None
        cpu = train_steps(model, train, order, stage, settings, args.lr, features, ef)
        result["fine_tune"] = [r for r in result["fine_tune"] if r["name"] != name]
        result["fine_tune"].append(row(name, model_metrics(model, test), args.steps, cpu))
        print(result["fine_tune"][-1], flush=True)
    if args.fresh_steps and not (previous and previous.get("fresh")):
        pool = [train[i] for i in sorted(rng.choice(len(train), min(args.fresh_pool, len(train)), replace=False))]
        t0 = time.perf_counter()
        delta_pool = with_lindh_delta(pool)
        print(f"Lindh Hessians of {len(pool)} geometries in {time.perf_counter() - t0:.0f} s", flush=True)
        fresh_order = [rng.choice(len(pool), config.batch_size, replace=False) for _ in range(args.fresh_steps)]
        settings = config.settings("hessian")
        for name, samples, wrap in (
            ("fresh_full", pool, lambda m: m),
            ("fresh_lindh_delta", delta_pool, PlusLindh),
        ):
            model = fresh_head(base, 0, rms(samples))
            cpu = train_steps(
                model, samples, fresh_order, "hessian", settings, args.fresh_lr, BackboneFeatures(model, samples)
            )
            result["fresh"].append(row(name, model_metrics(wrap(model), test), args.fresh_steps, cpu))
            print(result["fresh"][-1], flush=True)
        result.update(fresh_steps=args.fresh_steps, fresh_lr=args.fresh_lr, fresh_pool=len(pool))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return render(result, args.output)


def render(result: dict, output: Path) -> int:
    """Write the markdown tables (and the REPORT section, for the default output)."""
    text = markdown(result) if result.get("fresh") else markdown({**result, "fresh": [], "fresh_steps": 0})
    output.with_suffix(".md").write_text(text)
    if output == OUTPUT:
        update_report("loss_ablation", f"{HEADING}\n\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
