"""A pretrained equivariant potential from PyPI (SevenNet-0) against our backbone, fine-tuned at the same CPU budget.

    PYTHONPATH=runs/sevenn/pkgs python benchmarks/pretrained_backbone.py [--cpu-minutes 10] [--test-samples 200]

Issue 20, ask 6. ``sevenn`` 0.13.0 (MIT) ships the SevenNet-0 weights (11 Jul 2024, PBE on MPtrj, 5 A
cutoff) inside its wheel. Both models are fine-tuned on the campaign's energy+force pool (the Hessian
shards' training geometries plus the energy+force geometries, Hessians ignored; geometries whose largest
atomic force exceeds ``--max-force`` eV/A dropped) with the campaign's ``energy_forces`` loss (per-atom
energy MAE + 10 x force MAE, :func:`aiida_hip.hip.losses.weighted_loss`), AdamW (lr 1e-4, no weight
decay), batches of 16 in one seeded order shared by both, gradient-norm clip 1.0, on one thread, each for
``--cpu-minutes`` of its own CPU time (``time.process_time``: batching and graph building included,
evaluation excluded). Ours: the ``runs/ablation/start_9000.pt`` campaign state, copied to
``runs/sevenn/start.pt`` (backbone parameters trained, as in the campaign). SevenNet-0: every parameter.

Reported, on the same ``--test-samples`` geometries of the test split (:func:`evaluation_subset`): force
MAE (eV/A) before and after, per-atom energy MAE, geometries seen, training and inference geometries per
CPU-second, parameter counts. SevenNet-0 predicts PBE energies, so a per-element energy shift (least
squares of GFN2-xTB minus SevenNet-0 energies on composition, over ``--shift-samples`` pool geometries)
is added to its energies before anything is compared or trained; forces are what the comparison is about.

sevenn is not a dependency of the project: install it, without touching ``.venv``'s torch, into a
separate folder and put that on ``PYTHONPATH``::

    .venv/bin/pip install --no-deps --target runs/sevenn/pkgs sevenn==0.13.0 torch_geometric xxhash braceexpand

Writes ``benchmarks/results/pretrained_backbone.{json,md}`` and the fine-tuned weights under
``runs/sevenn/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import time
from dataclasses import replace
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch
from common import git_commit, hardware

from aiida_hip.common.files import sha256_of
from aiida_hip.dataset.campaign import EF_ROOT, ROOT, training_data
from aiida_hip.dataset.evaluate import evaluation_subset
from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip.campaign import CampaignState
from aiida_hip.hip.data import Sample, collate
from aiida_hip.hip.losses import weighted_loss
from aiida_hip.hip.train import TrainSettings, stage_forward, trainable_parameters

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "benchmarks" / "results" / "pretrained_backbone"
WORKDIR = REPO / "runs" / "sevenn"
START = REPO / "runs" / "ablation" / "start_9000.pt"
SEVENN_VERSION = "0.13.0"
PRETRAINED = "7net-0"
INSTALL = (
    f".venv/bin/pip install --no-deps --target runs/sevenn/pkgs sevenn=={SEVENN_VERSION} torch_geometric "
    "xxhash braceexpand   # then run with PYTHONPATH=runs/sevenn/pkgs"
)


def import_sevenn():
    """sevenn and the pieces used here, imported only when needed, with the install line if missing."""
    try:
        import sevenn
        import sevenn._keys as keys
        import sevenn.util as util
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.loader.dataloader import Collater
    except ImportError as exc:
        raise SystemExit(
            f"sevenn {SEVENN_VERSION} is not importable ({exc}). It is not a project dependency; install it "
            f"beside .venv (never let pip replace torch):\n    {INSTALL}"
        ) from exc
    if sevenn.__version__ != SEVENN_VERSION:
        print(f"warning: sevenn {sevenn.__version__}, this benchmark was written for {SEVENN_VERSION}", flush=True)
    return sevenn, keys, util, AtomGraphData, unlabeled_atoms_to_graph, Collater


class SevenNet:
    """SevenNet-0 as a force field on :class:`Sample` batches: energies (G,) with a per-element shift, forces."""

    def __init__(self) -> None:
        self.sevenn, self.key, util, self.graph_data, self.to_graph, collater = import_sevenn()
        self.path = Path(util.pretrained_name_to_path(PRETRAINED))
        checkpoint = util.load_checkpoint(str(self.path))
        self.config = checkpoint.config
        self.cutoff = float(self.config[self.key.CUTOFF])
        self.model = checkpoint.build_model()
        self.model.set_is_batch_data(True)
        self.collate_graphs = collater([])
        self.elements = sorted(int(z) for z in self.config[self.key.TYPE_MAP])
        self.shift = torch.zeros(119)  # eV per element, added to SevenNet-0's energy

    def batch(self, samples: list[Sample]):
        import ase

        graphs = []
        for s in samples:
            atoms = ase.Atoms(numbers=s.numbers, positions=s.positions)  # molecule: no cell, no periodicity
            graphs.append(self.graph_data.from_numpy_dict(self.to_graph(atoms, self.cutoff)))
        return self.collate_graphs(graphs)

    def forward(self, samples: list[Sample]) -> dict:
        out = self.model(self.batch(samples))
        numbers = torch.as_tensor(np.concatenate([s.numbers for s in samples]))
        graph = torch.repeat_interleave(torch.tensor([s.n_atoms for s in samples]))
        shift = torch.zeros(len(samples)).index_add(0, graph, self.shift[numbers])
        return {"energy": out[self.key.PRED_TOTAL_ENERGY] + shift, "forces": out[self.key.PRED_FORCE]}

    def predict(self, samples: list[Sample]) -> tuple[np.ndarray, list[np.ndarray]]:
        self.model.eval()  # no double-backward graph; forces still need autograd (no torch.no_grad here)
        out = self.forward(samples)
        forces = out["forces"].detach().numpy().astype(np.float64)
        first = np.cumsum([0, *[s.n_atoms for s in samples]])
        return out["energy"].detach().numpy(), [forces[first[k] : first[k + 1]] for k in range(len(samples))]

    def fit_shift(self, samples: list[Sample], batch_size: int) -> dict:
        """Least squares of (reference - SevenNet-0) energies on element counts; sets :attr:`shift`."""
        self.shift.zero_()
        predicted = np.concatenate(
            [self.predict(samples[i : i + batch_size])[0] for i in range(0, len(samples), batch_size)]
        )
        elements = sorted({int(z) for s in samples for z in s.numbers})
        counts = np.array([[np.sum(s.numbers == z) for z in elements] for s in samples], dtype=np.float64)
        residual = np.array([s.energy for s in samples]) - predicted
        shift, *_ = np.linalg.lstsq(counts, residual, rcond=None)
        self.shift[elements] = torch.as_tensor(shift, dtype=self.shift.dtype)
        left = residual - counts @ shift
        atoms = counts.sum(axis=1)
        return {
            "elements": elements,
            "shift_eV": [float(x) for x in shift],
            "samples": len(samples),
            "raw_energy_mae_per_atom_eV": float(np.mean(np.abs(residual) / atoms)),
            "shifted_energy_mae_per_atom_eV": float(np.mean(np.abs(left) / atoms)),
        }

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())


def ours_predict(model, samples: list[Sample]) -> tuple[np.ndarray, list[np.ndarray]]:
    out = model.predict_batch([(s.numbers, s.positions) for s in samples], hessian=None)
    return np.array([o["energy"] for o in out]), [o["forces"] for o in out]


def evaluate(predict, test: list[Sample], batch_size: int) -> dict:
    """Force MAE (eV/A, all components), per-atom energy MAE (eV) and inference geometries per CPU-second."""
    energies, forces = [], []
    t0 = time.process_time()
    for start in range(0, len(test), batch_size):
        e, f = predict(test[start : start + batch_size])
        energies.append(e)
        forces += f
    cpu = time.process_time() - t0
    energies = np.concatenate(energies)
    pairs = list(zip(energies, forces, test, strict=True))
    return {
        "force_mae": float(np.concatenate([np.abs(f - s.forces).reshape(-1) for _, f, s in pairs]).mean()),
        "energy_mae_per_atom": float(np.mean([abs(e - s.energy) / s.n_atoms for e, _, s in pairs])),
        "inference_cpu_s": cpu,
        "inference_geometries_per_cpu_s": len(test) / cpu,
    }


def fine_tune(forward, params, train_mode, batches, pool, budget_s: float, lr: float, clip: float, name: str) -> dict:
    """AdamW steps on ``batches`` in order until ``budget_s`` CPU seconds are spent; returns the trace."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    weights = TrainSettings(stage="energy_forces").weights()
    train_mode()
    cpu, seen, steps, trace, window = 0.0, 0, 0, [], []
    for idx in batches:
        if cpu >= budget_s:
            break
        t0 = time.process_time()
        chunk = [pool[i] for i in idx]
        pred, target = forward(chunk)
        loss, terms = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        cpu += time.process_time() - t0
        steps += 1
        seen += len(chunk)
        window.append([float(loss.detach()), terms.get("energy", 0.0), terms.get("forces", 0.0)])
        if steps % 20 == 0:
            mean = np.mean(window, axis=0)
            trace.append({"step": steps, "cpu_s": round(cpu, 1), "loss": mean[0], "energy": mean[1], "forces": mean[2]})
            print(f"  {name}: step {steps}, {cpu:.0f} CPU-s, loss {mean[0]:.4f} (forces {mean[2]:.4f})", flush=True)
            window = []
    if window:
        mean = np.mean(window, axis=0)
        trace.append({"step": steps, "cpu_s": round(cpu, 1), "loss": mean[0], "energy": mean[1], "forces": mean[2]})
    return {
        "steps": steps,
        "geometries_seen": seen,
        "train_cpu_s": cpu,
        "train_geometries_per_cpu_s": seen / cpu if cpu else None,
        "trace": trace,
    }


def batch_order(n: int, batch_size: int, seed: int):
    """Seeded epochs of shuffled index batches, endless: the same stream for both models."""
    rng, epoch = np.random.default_rng(seed), 0
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
        epoch += 1


def markdown(result: dict) -> str:
    m, rows = result["minutes"], result["rows"]
    lines = [
        f"### Pretrained backbone (SevenNet-0) vs ours, {m:g} CPU-minutes of fine-tuning each",
        "",
        f"{result['test_samples']} test-split geometries ({result['test_reactions']} held-out reactions), "
        f"GFN2-xTB reference; fine-tuning pool {result['pool']['used']} energy+force geometries "
        f"({result['pool']['dropped_max_force']} with an atomic force > {result['pool']['max_force']} eV/A dropped); "
        f"one thread, CPU time; {result['date']}, {result['hardware']}, commit {result['commit']}.",
        "",
        "| model | force MAE [eV/A] | energy MAE [eV/atom] | geometries seen | train geometries / CPU-s "
        "| inference geometries / CPU-s | parameters (trained) |",
        "|---|---|---|---|---|---|---|",
    ]

    def num(v, spec):
        return "-" if v is None else format(v, spec)

    for row in rows:
        lines.append(
            f"| {row['name']} | {row['force_mae']:.4f} | {row['energy_mae_per_atom']:.4f} | {row['geometries_seen']} "
            f"| {num(row['train_geometries_per_cpu_s'], '.1f')} | {row['inference_geometries_per_cpu_s']:.1f} "
            f"| {row['parameters']:,} ({row['trained_parameters']:,}) |"
        )
    s, sn = result["sevennet"], result["sevennet"]["energy_shift"]
    lines += [
        "",
        f"SevenNet-0: sevenn {s['version']} ({s['licence']}), `{s['checkpoint']}` (sha256 {s['sha256'][:16]}...), "
        f"cutoff {s['cutoff']:g} A, {s['n_elements']} elements, trained on PBE (MPtrj). Its energies get a per-element "
        f"shift fitted on {sn['samples']} pool geometries (per-atom energy MAE {sn['raw_energy_mae_per_atom_eV']:.2f} "
        f"-> {sn['shifted_energy_mae_per_atom_eV']:.3f} eV there); forces are unchanged by it. Ours: "
        f"`{result['ours']['state']}` (sha256 {result['ours']['sha256'][:16]}...), backbone trained, "
        "Hessian head frozen. Loss: per-atom energy MAE + 10 x force MAE; AdamW lr "
        f"{result['lr']:g}, batch {result['batch_size']}, clip {result['grad_clip']:g}, same seeded batch order. "
        f"Wall time {result['wall_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-minutes", type=float, default=10.0, help="fine-tuning CPU budget of each model")
    parser.add_argument("--test-samples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--max-force", type=float, default=50.0, help="drop pool geometries above this (eV/A)")
    parser.add_argument("--shift-samples", type=int, default=1024, help="pool geometries for SevenNet's shift")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", type=Path, default=START, help="our campaign state (copied to runs/sevenn/)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    wall0 = time.perf_counter()
    sevennet = SevenNet()  # fail early when sevenn is missing
    WORKDIR.mkdir(parents=True, exist_ok=True)
    state_copy = WORKDIR / "start.pt"
    if not state_copy.is_file() or sha256_of(state_copy) != sha256_of(args.state):
        shutil.copyfile(args.state, state_copy)

    os.chdir(REPO)  # the campaign's data paths are relative to the repository
    test = evaluation_subset(load_shards(ROOT, "test"), args.test_samples)
    train, _val, ef_train, digest, _parts = training_data(ROOT, EF_ROOT)
    everything = [replace(s, hessian=None) for s in train + ef_train]  # energy + forces only
    pool = [s for s in everything if np.linalg.norm(s.forces, axis=1).max() <= args.max_force]
    print(f"pool {len(pool)} geometries ({len(everything) - len(pool)} dropped), test {len(test)}", flush=True)
    missing = sorted({int(z) for s in pool + test for z in s.numbers} - set(sevennet.elements))
    if missing:
        raise SystemExit(f"SevenNet-0 does not know elements {missing}")

    budget = 60.0 * args.cpu_minutes
    rows = []

    # ---- ours
    ours = CampaignState.load(state_copy).build_model(dtype=torch.float32)
    params = trainable_parameters(ours, "energy_forces")
    n_ours, n_ours_trained = ours.num_parameters(), sum(p.numel() for p in params)
    before = evaluate(lambda c: ours_predict(ours, c), test, args.batch_size)
    print(f"ours start: force MAE {before['force_mae']:.4f}", flush=True)
    rows.append({"name": "ours, start", "geometries_seen": 0, "train_geometries_per_cpu_s": None, **before})

    def ours_forward(chunk):
        data, target = collate(chunk, ours.dtype, "cpu")
        return stage_forward(ours, data, "energy_forces", training=True), target

    torch.manual_seed(args.seed)
    run = fine_tune(
        ours_forward,
        params,
        ours.train,
        batch_order(len(pool), args.batch_size, args.seed),
        pool,
        budget,
        args.lr,
        args.grad_clip,
        "ours",
    )
    for p in ours.parameters():
        p.requires_grad_(True)
    after = evaluate(lambda c: ours_predict(ours, c), test, args.batch_size)
    print(f"ours +{args.cpu_minutes:g} min: force MAE {after['force_mae']:.4f}", flush=True)
    rows.append({"name": f"ours, +{args.cpu_minutes:g} CPU-min", **run, **after})
    torch.save(ours.state_dict(), WORKDIR / "ours_finetuned.pt")
    for r in rows:
        r.update(parameters=n_ours, trained_parameters=n_ours_trained)

    # ---- SevenNet-0
    rng = np.random.default_rng(args.seed + 1)
    shift_set = [pool[i] for i in sorted(rng.choice(len(pool), min(args.shift_samples, len(pool)), replace=False))]
    t0 = time.process_time()
    shift = sevennet.fit_shift(shift_set, args.batch_size)
    shift["cpu_s"] = time.process_time() - t0
    print(f"SevenNet-0 energy shift {shift}", flush=True)
    n_7 = sum(p.numel() for p in sevennet.parameters())
    zero = evaluate(sevennet.predict, test, args.batch_size)
    print(f"SevenNet-0 zero-shot: force MAE {zero['force_mae']:.4f}", flush=True)
    rows.append({"name": "SevenNet-0, zero-shot (energy shift only)", "geometries_seen": 0, **zero})
    rows[-1]["train_geometries_per_cpu_s"] = None

    def sevennet_forward(chunk):
        target = {
            "energy": torch.tensor([s.energy for s in chunk], dtype=torch.float32),
            "forces": torch.as_tensor(np.concatenate([s.forces for s in chunk]), dtype=torch.float32),
        }
        return sevennet.forward(chunk), target

    torch.manual_seed(args.seed)
    params7 = sevennet.parameters()
    run7 = fine_tune(
        sevennet_forward,
        params7,
        sevennet.model.train,
        batch_order(len(pool), args.batch_size, args.seed),  # the same stream as ours
        pool,
        budget,
        args.lr,
        args.grad_clip,
        "SevenNet-0",
    )
    after7 = evaluate(sevennet.predict, test, args.batch_size)
    print(f"SevenNet-0 +{args.cpu_minutes:g} min: force MAE {after7['force_mae']:.4f}", flush=True)
    rows.append({"name": f"SevenNet-0, +{args.cpu_minutes:g} CPU-min", **run7, **after7})
    torch.save(sevennet.model.state_dict(), WORKDIR / "sevennet0_finetuned.pth")
    for r in rows[2:]:
        r.update(parameters=n_7, trained_parameters=sum(p.numel() for p in params7))

    try:
        import torch_geometric

        pyg = torch_geometric.__version__
    except ImportError:
        pyg = None
    cfg = sevennet.config
    result = {
        "benchmark": "pretrained_backbone",
        "date": datetime.date.today().isoformat(),
        "hardware": hardware(),
        "commit": git_commit(),
        "minutes": args.cpu_minutes,
        "budget_cpu_s_each": budget,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "grad_clip": args.grad_clip,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "loss": "per-atom energy MAE + 10 x force MAE (weighted_loss, energy_forces weights)",
        "test_samples": len(test),
        "test_reactions": len({s.reaction for s in test}),
        "pool": {
            "hessian_train": len(train),
            "ef_train": len(ef_train),
            "used": len(pool),
            "dropped_max_force": len(everything) - len(pool),
            "max_force": args.max_force,
            "data_hash": digest,
        },
        "ours": {
            "state": str(args.state.relative_to(REPO) if args.state.is_absolute() else args.state),
            "sha256": sha256_of(state_copy),
            "parameters": n_ours,
            "trained_parameters": n_ours_trained,
            "cutoff": ours.config.cutoff,
            "elements": list(ours.config.elements),
        },
        "sevennet": {
            "package": "sevenn",
            "version": sevennet.sevenn.__version__,
            "licence": importlib_metadata.metadata("sevenn").get("License", "").splitlines()[0] or "MIT",
            "torch_geometric": pyg,
            "model": PRETRAINED,
            "checkpoint": str(sevennet.path.relative_to(Path(sevennet.sevenn.__file__).parents[1])),
            "sha256": sha256_of(sevennet.path),
            "cutoff": sevennet.cutoff,
            "n_elements": len(sevennet.elements),
            "layers": cfg.get("num_convolution_layer"),
            "lmax": cfg.get("lmax"),
            "channels": cfg.get("channel"),
            "parameters": n_7,
            "energy_shift": shift,
        },
        "rows": rows,
        "wall_s": time.perf_counter() - wall0,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2, default=float))
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
