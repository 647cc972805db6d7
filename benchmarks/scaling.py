"""Scaling study of the HIP model (issue 28, ask 1): what gets the Hessian error down per CPU-hour.

    python benchmarks/scaling.py run --recipe hf_sum [--cpu-seconds 600] [--n-train N]   # one learning curve
    python benchmarks/scaling.py report                                                  # fit, table, plot

Every ``run`` trains one recipe on one core (``OMP_NUM_THREADS=1``) with the campaign's own trainer
(:func:`aiida_hip.hip.campaign.run`, the same batches, losses and schedule as ``data/campaign``) and
evaluates the model every few training CPU-seconds on the same 200 test geometries the campaign's
promotions use (test split of ``data/campaign/shards``: reactant molecules never trained on). The x
axis is the process CPU time spent in training (evaluation excluded), so runs that share the two cores
with other jobs still line up. ``--n-train`` trains on the geometries of the first training reactions
only: the curve against the number of Hessian-labelled geometries. Rows go to
``benchmarks/results/scaling.partial.jsonl``; ``report`` fits ``MAE = a * t^-b`` to the last half of
every curve (a power law keeps falling: where a curve has reached a plateau its fitted b is near zero and
the hours run to infinity, and a curve still in its fast early phase extrapolates optimistically), adds
the campaign's own long curve (``MODEL_CARD.md`` history, today's recipe, steps converted at its
measured rate), extrapolates the CPU-hours to Hessian MAE 0.15 and 0.10 and
writes ``benchmarks/results/scaling.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from common import RESULTS, metadata, update_report, write_json

from aiida_hip.dataset.campaign import ROOT as SHARDS
from aiida_hip.dataset.evaluate import evaluation_subset, model_metrics
from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip.campaign import SHIPPED_MODEL, CampaignConfig, CampaignState, Stage, run
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT

PARTIAL = RESULTS / "scaling.partial.jsonl"
WORK = Path("runs/scaling")
TARGETS = (0.15, 0.10)
#: training CPU-seconds at which a run is evaluated, as fractions of its budget
EVAL_FRACTIONS = (0.0, 0.05, 0.12, 0.25, 0.5, 0.75, 1.0)
CHEAP_MODEL = replace(SHIPPED_MODEL, channels=24, num_layers=2, hessian_channels=8, hessian_sum_rule=True)

#: name -> (what it is, stage, model config, init, lr)
RECIPES: dict[str, tuple[str, str, object, str, float]] = {
    "today": (
        "today's losses (E + F + H, force double backward), shipped architecture",
        "end_to_end",
        SHIPPED_MODEL,
        "random",
        1e-3,
    ),
    "hf": (
        "Hessian-first (H + sign + energy, one backward), shipped head",
        "hessian_first",
        SHIPPED_MODEL,
        "random",
        1e-3,
    ),
    "hf_sum": (
        "Hessian-first, sum-rule head (exactly symmetric and translation-invariant)",
        "hessian_first",
        replace(SHIPPED_MODEL, hessian_sum_rule=True),
        "random",
        1e-3,
    ),
    "hf_sum_cheap": (
        "Hessian-first, sum-rule head, 24 channels, 2 layers, 8 head channels",
        "hessian_first",
        CHEAP_MODEL,
        "random",
        1e-3,
    ),
    "ft_today": (
        "today's recipe fine-tuning the shipped model (the campaign's end_to_end)",
        "end_to_end",
        SHIPPED_MODEL,
        "shipped",
        2e-4,
    ),
    "ft_hf_sum": (
        "Hessian-first fine-tuning the shipped model, converted to the sum-rule head",
        "hessian_first",
        replace(SHIPPED_MODEL, hessian_sum_rule=True),
        "shipped",
        2e-4,
    ),
    "ft_hf_sum_ef4": (
        "Hessian-first fine-tuning, sum-rule head, every 4th step energy + forces on the Hessian geometries",
        "hessian_first",
        replace(SHIPPED_MODEL, hessian_sum_rule=True),
        "shipped",
        2e-4,
    ),
}
#: recipes with interleaved energy+force steps (``CampaignConfig.ef_every``)
EF_EVERY = {"ft_hf_sum_ef4": 4}


def _config(recipe: str) -> CampaignConfig:
    """The recipe as a campaign config; ``init: shipped`` with the sum-rule head converts the shipped weights."""
    _, stage, model, init, lr = RECIPES[recipe]
    return CampaignConfig(
        stages=(Stage(stage, None, lr=lr),), init=init, model=model, ef_data=False, ef_every=EF_EVERY.get(recipe, 0)
    )


def _subset(train: list, n_train: int | None) -> list:
    """The geometries of the first training reactions (sorted ids) until ``n_train`` are reached."""
    if n_train is None or n_train >= len(train):
        return train
    by_reaction: dict[str, list] = {}
    for s in train:
        by_reaction.setdefault(s.reaction, []).append(s)
    out: list = []
    for rid in sorted(by_reaction):
        if len(out) >= n_train:
            break
        out += by_reaction[rid]
    return out


def _evaluate(state_path: Path, test: list) -> dict:
    model = CampaignState.load(state_path).build_model(dtype=torch.float32)
    metrics = model_metrics(model, test)
    return {k: v for k, v in metrics.items() if k != "imag_counts"}


def run_recipe(recipe: str, cpu_seconds: float, n_train: int | None, tag: str) -> None:
    """Train ``recipe`` for ``cpu_seconds`` of training CPU time, evaluating at ``EVAL_FRACTIONS``."""
    torch.set_num_threads(1)
    config = _config(recipe)
    train = _subset(load_shards(SHARDS, "train"), n_train)
    test = evaluation_subset(load_shards(SHARDS, "test"), 200)
    state = WORK / f"{tag}.pt"
    state.unlink(missing_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    run(state, train, [], config, "scaling", max_steps=0, validate_every=None)  # the initial model, saved
    cpu, steps, rate = 0.0, 0, 0.2
    for fraction in EVAL_FRACTIONS:
        target = fraction * cpu_seconds
        while cpu < target - 2.0:  # resume in chunks sized by the measured rate (steps per CPU-second)
            t0 = time.process_time()
            k = max(1, int((target - cpu) * rate))
            steps = run(state, train, [], config, "scaling", max_steps=k, validate_every=None, save_every_s=1e9).step
            cpu += time.process_time() - t0
            rate = steps / cpu
        t0 = time.perf_counter()
        metrics = _evaluate(state, test)
        row = {
            "tag": tag,
            "recipe": recipe,
            "n_train": len(train),
            "train_reactions": len({s.reaction for s in train}),
            "cpu_s": cpu,
            "steps": steps,
            "geometries_seen": steps * config.batch_size,
            "geometries_per_cpu_s": (steps * config.batch_size / cpu) if cpu else None,
            "eval_s": time.perf_counter() - t0,
            **metrics,
        }
        with PARTIAL.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(
            f"{tag}: {cpu:.0f} CPU-s, step {steps}, Hessian MAE {metrics['hessian_mae']:.4f}, "
            f"CosSim(v1) {metrics['cossim_v1']:.3f}",
            flush=True,
        )


# ------------------------------------------------------------------------------------------------ report


def _fit(t: np.ndarray, y: np.ndarray) -> dict | None:
    """Least squares of log y = log a - b log t; the CPU-hours (or count) where it reaches each target."""
    keep = (t > 0) & (y > 0)
    if keep.sum() < 2:
        return None
    slope, intercept = np.polyfit(np.log(t[keep]), np.log(y[keep]), 1)
    a, b = math.exp(intercept), -slope
    reach = {f"{target:g}": (a / target) ** (1 / b) if b > 1e-6 else math.inf for target in TARGETS}
    return {"a": a, "b": b, "reach": reach}


CARD = DEFAULT_CHECKPOINT.with_name("MODEL_CARD.md")


def campaign_curve(card: Path = CARD) -> list[dict]:
    """The campaign's promotion evaluations (today's recipe, fine-tuning on all shards): step, MAE, CosSim."""
    rows = []
    for line in card.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and re.fullmatch(r"\d{4}-\d\d-\d\d", cells[0]) and cells[1].isdigit():
            rows.append(
                {"step": int(cells[1]), "stage": cells[2], "hessian_mae": float(cells[6]), "cossim_v1": float(cells[7])}
            )
    return rows


STATE = Path("data/campaign/state.pt")


def campaign_v2_curve(path: Path = STATE) -> list[dict]:
    """The running campaign's validation Hessian MAE by step, with wall-clock hours since its start (one core,
    ``nice``: about its CPU time when nothing else runs), for the long end of the v2 recipe's curve."""
    if not path.is_file():
        return []
    import datetime

    state = CampaignState.load(path)
    start = datetime.datetime.fromisoformat(state.history[0]["time"])
    return [
        {
            "step": h["step"],
            "hours": (datetime.datetime.fromisoformat(h["time"]) - start).total_seconds() / 3600,
            "val_hessian_mae": h["val"]["hessian"],
        }
        for h in state.history
        if h.get("val") and "hessian" in h["val"] and h.get("stage") == "hessian_first"
    ]


def _curves(rows: list[dict]) -> dict[str, list[dict]]:
    curves: dict[str, list[dict]] = {}
    for row in rows:
        curves.setdefault(row["tag"], []).append(row)
    return {tag: sorted(points, key=lambda r: r["cpu_s"]) for tag, points in curves.items()}


def _campaign_entry(ft: list[dict] | None) -> dict | None:
    """The campaign's curve in CPU-hours at the measured rate of ``ft_today`` (same recipe, same core)."""
    points = [r for r in campaign_curve() if r["stage"] == "end_to_end"]
    if not points or not ft or not ft[-1]["steps"]:
        return None
    cpu_per_step = ft[-1]["cpu_s"] / ft[-1]["steps"]
    t = np.array([p["step"] * cpu_per_step for p in points])
    return {
        "points": points,
        "cpu_per_step": cpu_per_step,
        "fit": _fit(t / 3600, np.array([p["hessian_mae"] for p in points])),
    }


def summarise(rows: list[dict]) -> dict:
    curves = _curves(rows)
    entries = {}
    for tag, points in curves.items():
        t = np.array([p["cpu_s"] for p in points]) / 3600
        y = np.array([p["hessian_mae"] for p in points])
        late = t >= 0.4 * t.max()  # the fast early phase overstates the slope: the last half of the curve
        entries[tag] = {
            "recipe": points[0]["recipe"],
            "what": RECIPES[points[0]["recipe"]][0],
            "n_train": points[0]["n_train"],
            "geometries_per_cpu_s": points[-1]["geometries_per_cpu_s"],
            "points": points,
            "fit": _fit(t[late], y[late]),
        }
    sizes = _at_common_time([(e["n_train"], e["points"], tag) for tag, e in entries.items() if e["recipe"] == "hf_sum"])
    data_fit = _fit(np.array([s[0] for s in sizes], float), np.array([s[1] for s in sizes])) if len(sizes) > 1 else None
    return {
        "curves": entries,
        "data_size": {"points": sizes, "fit": data_fit},
        "campaign": _campaign_entry(curves.get("ft_today")),
        "campaign_v2": campaign_v2_curve(),
    }


def _at_common_time(curves: list[tuple[int, list[dict], str]]) -> list[tuple[int, float, str, float]]:
    """``(n_train, MAE, tag, CPU-s)`` of each curve at the longest CPU time all of them reached (log-interpolated)."""
    if not curves:
        return []
    common = min(points[-1]["cpu_s"] for _, points, _ in curves)
    out = []
    for n, points, tag in curves:
        t = np.array([p["cpu_s"] for p in points if p["cpu_s"] > 0])
        y = np.array([p["hessian_mae"] for p in points if p["cpu_s"] > 0])
        out.append((n, float(np.exp(np.interp(np.log(common), np.log(t), np.log(y)))), tag, common))
    return sorted(out)


def _hours(x: float | None) -> str:
    if x is None or not math.isfinite(x) or x > 1e5:
        return "never (plateau)"
    return f"{x:.3g}"


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        "### Scaling study: test Hessian MAE against training CPU time (issue 28)",
        "",
        "| curve | recipe | Hessian geometries | geometries / CPU-s | CPU-s trained | Hessian MAE start -> end "
        "[eV/A^2] | CosSim(v1) end | fit b (MAE ~ t^-b) | CPU-h to MAE 0.15 | CPU-h to MAE 0.10 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, e in summary["curves"].items():
        p0, p1, fit = e["points"][0], e["points"][-1], e["fit"] or {}
        reach = fit.get("reach", {})
        lines.append(
            f"| {tag} | {e['what']} | {e['n_train']} | {e['geometries_per_cpu_s'] or 0:.1f} | {p1['cpu_s']:.0f} | "
            f"{p0['hessian_mae']:.4f} -> {p1['hessian_mae']:.4f} | {p1['cossim_v1']:.3f} | "
            f"{fit.get('b', float('nan')):.3f} | {_hours(reach.get('0.15'))} | {_hours(reach.get('0.1'))} |"
        )
    camp = summary.get("campaign")
    if camp and camp["fit"]:
        pts, fit = camp["points"], camp["fit"]
        lines.append(
            f"| campaign | today's recipe on all shards, steps {pts[0]['step']}-{pts[-1]['step']} "
            f"(MODEL_CARD history, {camp['cpu_per_step']:.2f} CPU-s/step) | all | - | "
            f"{pts[-1]['step'] * camp['cpu_per_step']:.0f} | "
            f"{pts[0]['hessian_mae']:.4f} -> {pts[-1]['hessian_mae']:.4f} | {pts[-1]['cossim_v1']:.3f} | "
            f"{fit['b']:.3f} | {_hours(fit['reach']['0.15'])} | "
            f"{_hours(fit['reach']['0.1'])} |"
        )
    data = summary["data_size"]
    if data["points"]:
        lines += [
            "",
            f"Against the number of Hessian-labelled training geometries (recipe hf_sum, each curve at "
            f"{data['points'][0][3]:.0f} training CPU-s):",
            "",
            "| Hessian geometries | Hessian MAE | epochs over the training set |",
            "|---|---|---|",
        ]
        rate = summary["curves"]["hf_sum"]["geometries_per_cpu_s"] if "hf_sum" in summary["curves"] else 0
        lines += [f"| {n} | {mae:.4f} | {rate * cpu / n:.1f} |" for n, mae, _, cpu in data["points"]]
        if data["fit"]:
            f = data["fit"]
            verdict = (
                "more data does not lower the error at this budget: the runs are compute-bound"
                if f["b"] < 0.1
                else f"N for MAE 0.15: {_hours(f['reach']['0.15'])}, for 0.10: {_hours(f['reach']['0.1'])}"
            )
            lines.append(f"\nFit MAE ~ N^-b: b = {f['b']:.3f}; {verdict}.")
    v2 = summary.get("campaign_v2") or []
    if v2:
        lines += [
            "",
            "The v2 campaign (Hessian-first, sum-rule head, 24 channels, 2 layers, from random weights, E+F every 4th "
            "step) in the background, validation Hessian MAE (val split, at most 256 geometries):",
            "",
            "| step | wall-clock hours | validation Hessian MAE [eV/A^2] |",
            "|---|---|---|",
            *(f"| {r['step']} | {r['hours']:.2f} | {r['val_hessian_mae']:.4f} |" for r in v2),
        ]
    lines += [
        "",
        f"One core per run, CPU time of the training process (evaluation excluded); 200 test geometries "
        f"(test split, reactant molecules never trained on); {meta['hardware']}; {meta['date']}; commit "
        f"{meta['commit']}.",
    ]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(16, 4.5))
    for tag, e in summary["curves"].items():
        pts = [p for p in e["points"] if p["cpu_s"] > 0]
        t = np.array([p["cpu_s"] for p in pts]) / 3600
        line = ax.loglog(t, [p["hessian_mae"] for p in pts], "o-", label=tag)[0]
        if e["fit"]:
            grid = np.logspace(math.log10(t.min()), math.log10(20 * t.max()), 50)  # a short way past the data
            ax.loglog(grid, e["fit"]["a"] * grid ** -e["fit"]["b"], ":", color=line.get_color())
    camp = summary.get("campaign")
    if camp:
        t = np.array([p["step"] * camp["cpu_per_step"] for p in camp["points"]]) / 3600
        ax.loglog(t, [p["hessian_mae"] for p in camp["points"]], "ks-", label="campaign (today)")
    v2 = [r for r in summary.get("campaign_v2") or [] if r["hours"] > 0]
    if v2:
        ax.loglog(
            [r["hours"] for r in v2], [r["val_hessian_mae"] for r in v2], "k^-", label="campaign v2 (val, wall h)"
        )
    for target in TARGETS:
        ax.axhline(target, color="grey", lw=0.8)
    ax.set_ylim(0.05, 5)
    ax.set_xlabel("training CPU-hours (one core); dotted: power-law fits")
    ax.set_ylabel("test Hessian MAE [eV/A^2]")
    ax.legend(fontsize=7)
    for tag, e in summary["curves"].items():
        pts = [p for p in e["points"] if p["cpu_s"] > 0]
        bx.semilogx([p["cpu_s"] / 3600 for p in pts], [p["cossim_v1"] for p in pts], "o-", label=tag)
    bx.set_xlabel("training CPU-hours (one core)")
    bx.set_ylabel("test CosSim(v1)")
    sizes = summary["data_size"]["points"]
    if sizes:
        cx.semilogx([s[0] for s in sizes], [s[1] for s in sizes], "o-")
        cx.set_title(f"hf_sum at {sizes[0][3]:.0f} training CPU-s", fontsize=9)
    cx.set_xlabel("Hessian-labelled training geometries")
    cx.set_ylabel("test Hessian MAE [eV/A^2]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report() -> None:
    rows = [json.loads(line) for line in PARTIAL.read_text().splitlines() if line.strip()]
    summary = summarise(rows)
    meta = metadata(benchmark="scaling")
    write_json("scaling", {"meta": meta, "targets": TARGETS, **summary})
    text = markdown(summary, meta)
    (RESULTS / "scaling.md").write_text(text + "\n")
    plot(summary, RESULTS / "scaling.png")
    update_report("scaling", text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="one learning curve")
    one.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    one.add_argument("--cpu-seconds", type=float, default=600.0)
    one.add_argument("--n-train", type=int, default=None, help="Hessian geometries (first training reactions)")
    one.add_argument("--tag", default=None, help="curve name (default: recipe, plus _n<N> with --n-train)")
    sub.add_parser("report", help="fit, table and plot from the recorded curves")
    args = parser.parse_args(argv)
    if args.command == "report":
        report()
        return 0
    tag = args.tag or args.recipe + (f"_n{args.n_train}" if args.n_train else "")
    run_recipe(args.recipe, args.cpu_seconds, args.n_train, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
