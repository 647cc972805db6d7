"""HIP learns from the batch: one reaction family in batch order, with and without fine-tuning on the batch's
own reference Hessians (issue 29).

The family: 1,3-hydrogen shifts of substituted enols to their carbonyl tautomers, R1-C(OH)=CH-R2 ->
R1-C(=O)-CH2-R2 (keto-enol tautomerism; R1, R2 from CHNO substituents), built by the dataset's own
enumerator (:func:`aiida_hip.dataset.reactions.enumerate_reactions`) and relaxed at GFN2-xTB with its
``endpoints``. Every search is the product's default (the two-level search: HIP Hessians steer the TS
optimisation on the xTB surface, one exact xTB Hessian judges it, the IRC verifies it), run by
:func:`aiida_hip.pipeline.ts_search`, in a fixed batch order, in blocks of ``k``:

- ``off``: the shipped model serves every reaction;
- ``on``: after each block the reference Hessians the batch computed so far (each search's TS Hessians and,
  with thermochemistry, both ends; :func:`aiida_hip.dataset.harvest.labels_from_folder`) become shards, the
  serving model is fine-tuned on their training split (:func:`aiida_hip.dataset.learn.finetune_checkpoint`)
  and serves the next block only if its Hessian MAE on the batch's held-out reactions is no worse;
- ``free``: Hessian-free xTB (Sella's own estimate), the baseline the default must not lose to.

Per block: the guard trip rate, median TS steps, reference cost per verified TS, verified count, and the
Hessian MAE of the model that served the block on the block's own reference Hessians (reactions no model had
seen). The family is ours (development): nothing here is tuned on a held-out set.

    python benchmarks/learn_family.py [--k 8] [--mode head] [--configs off,on,free] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
R1 = ("[H]", "C", "CC", "OC", "N", "C#N", "CO", "C(C)C")
R2 = ("[H]", "C", "CC", "OC")
#: family -> (reactant, product) SMILES templates: the enol family tunes the fine-tune settings (development),
#: the enamine family (the same 1,3-H shift from N instead of O) is only reported (held out)
FAMILIES = {"enol": ("OC({a})=C{b}", "O=C({a})C{b}"), "enamine": ("NC({a})=C{b}", "N=C({a})C{b}")}


def family(name: str = "enol") -> list[tuple[str, str]]:
    """``(reactant, product)`` SMILES pairs: 32 tautomerisations of the family."""
    reactant, product = FAMILIES[name]
    return [(reactant.format(a=a, b=b), product.format(a=a, b=b)) for a in R1 for b in R2]


def family_reaction(enol: str, carbonyl: str):
    """The enumerator's reaction enol -> carbonyl (the same atom order on both sides), or None."""
    from rdkit import Chem

    from aiida_hip.dataset.reactions import enumerate_reactions

    target = Chem.CanonSmiles(carbonyl)
    for reaction in enumerate_reactions(enol, np.random.default_rng(0), max_reactions=10_000):
        if Chem.CanonSmiles(reaction.product_smiles) == target and reaction.move == "b1f1":
            return reaction
    return None


def build(name: str = "enol") -> list[dict]:
    """Relaxed ends of the family (cached in ``data/learn_family_<name>.extxyz``, two frames per reaction)."""
    from ase import Atoms
    from ase.io import read, write

    from aiida_hip.dataset.paths import SkipReaction, endpoints

    cache = ROOT / "data" / f"learn_family_{name}.extxyz"
    if not cache.is_file():
        frames = []
        for k, (enol, carbonyl) in enumerate(family(name)):
            reaction = family_reaction(enol, carbonyl)
            if reaction is None:
                print(f"{enol}: no enumerated move gives {carbonyl}")
                continue
            try:
                r, p, _, _ = endpoints(reaction, seed=1000 + k)
            except SkipReaction as exc:
                print(f"{enol}: skipped ({exc})")
                continue
            info = {"name": f"{name}_{k:02d}", "reaction": reaction.key}
            frames += [
                Atoms(numbers=reaction.numbers, positions=r, info=info | {"role": "reactant"}),
                Atoms(numbers=reaction.numbers, positions=p, info=info | {"role": "product"}),
            ]
        cache.parent.mkdir(parents=True, exist_ok=True)
        write(cache, frames, format="extxyz")
    frames = read(cache, index=":", format="extxyz")
    pairs = {}
    for f in frames:
        pairs.setdefault(f.info["name"], {"name": f.info["name"], "reaction": f.info["reaction"]})[f.info["role"]] = f
    return [pairs[name] for name in sorted(pairs)]


def search(reaction: dict, config: str, checkpoint: Path | None, workdir: Path) -> dict:
    """One default (or Hessian-free) search; its row (never raises)."""
    from aiida_hip.pipeline import Level, TSSearchSettings, ts_search

    if config == "free":
        level, settings = Level(calculator="xtb", hessian="none"), TSSearchSettings()
    else:
        level = Level(checkpoint=str(checkpoint) if checkpoint else None)
        settings = TSSearchSettings(refine="xtb")
    t0 = time.perf_counter()
    row = {"reaction": reaction["name"], "smiles": reaction["reaction"], "config": config}
    try:
        res = ts_search(reaction["reactant"], reaction["product"], workdir, level, settings).to_dict()
    except Exception as exc:  # one failure is a row, never the end of the benchmark
        return row | {"status": "error", "verified": False, "message": f"{type(exc).__name__}: {exc}"}
    feeds = [
        stage.get("hessian_feed") or {}
        for key, stage in (res.get("stages") or {}).items()
        if key.startswith("tsopt") and isinstance(stage, dict)
    ]
    return row | {
        "status": res["status"],
        "verified": res["status"] == "success",
        "tsopt_steps": res["n_tsopt_steps"],
        "reference_cost": (res.get("reference_cost") or {}).get("gradient_equivalents"),
        "model_hessians_used": res.get("model_hessians_used"),
        "guard_tripped": any(f.get("guard_tripped_at") is not None for f in feeds if f.get("approximate")),
        "barrier_ev": res.get("barrier_forward_ev"),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def served_mae(checkpoint: Path | None, labels: list) -> float | None:
    """Hessian MAE of the serving model on a block's own reference Hessians."""
    from aiida_hip.hip import load_model
    from aiida_hip.hip.finetune import hessian_mae

    if not labels:
        return None
    return hessian_mae(load_model(checkpoint), [label.sample() for label in labels])


def run_config(reactions: list[dict], config: str, k: int, settings, work: Path) -> dict:
    """The batch in order for one configuration: rows, and per block the serving model and its error."""
    from aiida_hip.dataset.harvest import labels_from_folder, write_labels
    from aiida_hip.dataset.learn import finetune_checkpoint

    checkpoint, rows, blocks = None, [], []
    harvest = work / config / "harvest"
    for b in range(0, len(reactions), k):
        block, labels = reactions[b : b + k], []
        for reaction in block:
            folder = work / config / reaction["name"]
            rows.append(search(reaction, config, checkpoint, folder) | {"block": b // k})
            labels += labels_from_folder(folder, reaction["name"])
            print(json.dumps(rows[-1]), flush=True)
        serving = "none" if config == "free" else checkpoint.name if checkpoint else "shipped"
        entry = {"block": b // k, "model": serving, "labels": len(labels)}
        if config != "free":
            entry["served_hessian_mae"] = served_mae(checkpoint, labels)
        if config == "on" and b + k < len(reactions):
            write_labels(labels, harvest, origin={"source": "benchmarks/learn_family.py"})
            out = work / config / f"model_after_block{b // k}.pt"
            report = finetune_checkpoint(checkpoint, [harvest], out, settings)
            entry["finetune"] = {key: report[key] for key in ("held_out", "no_worse", "seconds", "epochs")}
            entry["finetune"]["train_geometries"] = report["n_geometries"]
            if report["no_worse"]:
                checkpoint = out
        blocks.append(entry)
        print(json.dumps(entry), flush=True)
    return {"rows": rows, "blocks": blocks}


def block_table(result: dict) -> list[dict]:
    """Per block: verified, guard trip rate (of the searches that had HIP Hessians), median TS steps, cost."""
    out = []
    for entry in result["blocks"]:
        rows = [r for r in result["rows"] if r["block"] == entry["block"]]
        verified = [r for r in rows if r["verified"]]
        steps = [r["tsopt_steps"] for r in rows if r.get("tsopt_steps") is not None]
        cost = sum(r.get("reference_cost") or 0 for r in rows)
        out.append(
            {
                "block": entry["block"],
                "model": entry["model"],
                "n": len(rows),
                "verified": len(verified),
                "guard_trip_rate": round(np.mean([bool(r.get("guard_tripped")) for r in rows]), 3) if rows else None,
                "median_tsopt_steps": float(np.median(steps)) if steps else None,
                "cost_per_verified": round(cost / len(verified), 1) if verified else None,
                "served_hessian_mae": entry.get("served_hessian_mae"),
                "held_out_after": ((entry.get("finetune") or {}).get("held_out") or {}).get("hessian_mae_after"),
            }
        )
    return out


def markdown(results: dict, k: int, mode: str, name: str) -> str:
    role = "development: the fine-tune settings were chosen on it" if name == "enol" else "held out: never tuned on"
    lines = [
        f"### HIP learns from the batch: the {name} family ({role}), "
        f"{sum(len(v['rows']) for v in results.values())} searches, blocks of {k}, fine-tune mode `{mode}`",
        "",
        "| config | block | model serving | verified | guard trip rate | median TS steps | ref. cost / verified "
        "| served Hessian MAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config, result in results.items():
        for row in block_table(result):
            mae = row["served_hessian_mae"]
            lines.append(
                f"| {config} | {row['block']} | {row['model']} | {row['verified']}/{row['n']} | "
                f"{row['guard_trip_rate']} | {row['median_tsopt_steps']} | {row['cost_per_verified']} | "
                f"{'-' if mae is None else f'{mae:.3f}'} |"
            )
    return "\n".join(lines) + "\n"


def rewrite(output: Path) -> None:
    """The markdown table again from a run's JSON (``--rewrite``)."""
    payload = json.loads(output.with_suffix(".json").read_text())
    for result in payload["results"].values():
        for entry in result["blocks"]:
            entry["model"] = "none" if result["rows"][0]["config"] == "free" else entry["model"]
    output.with_suffix(".md").write_text(markdown(payload["results"], payload["k"], payload["mode"], payload["family"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="enol", choices=sorted(FAMILIES))
    parser.add_argument("--k", type=int, default=8, help="reactions per block")
    parser.add_argument("--mode", default="head", choices=["head", "end_to_end"])
    parser.add_argument("--minutes", type=float, default=3.0, help="fine-tune wall-time cap per block")
    parser.add_argument("--configs", default="off,on,free")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "learn_family")
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/results/learn_family_<family>")
    parser.add_argument("--rewrite", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args(argv)
    if args.rewrite:
        return rewrite(args.output or OUT / f"learn_family_{args.family}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from aiida_hip.hip.finetune import FinetuneSettings

    torch.set_num_threads(1)
    reactions = build(args.family)[: args.limit]
    output = args.output or OUT / f"learn_family_{args.family}"
    settings = replace(FinetuneSettings(mode=args.mode), max_minutes=args.minutes)
    work = args.work / args.family
    results = {c: run_config(reactions, c, args.k, settings, work) for c in args.configs.split(",")}
    payload = {
        "family": args.family,
        "k": args.k,
        "mode": args.mode,
        "finetune_settings": settings.to_dict(),
        "n_reactions": len(reactions),
        "results": results,
        "blocks": {c: block_table(r) for c, r in results.items()},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    table = markdown(results, args.k, args.mode, args.family)
    output.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
