"""Training as in the seed (A.4): backbone on energy + forces, then the Hessian head on a frozen backbone.

Stages: ``energy_forces`` (backbone + energy readout), ``hessian`` (HIP head only; loss Hessian MAE
+ eigen-subspace loss, k = 8, equal weights), ``end_to_end`` (everything, every loss), ``hessian_first``
(everything, on the Hessian terms plus the per-atom energy as an auxiliary: one backward pass, no force
double backward, since the two-level search takes only Hessians from HIP). Each stage
checkpoints every epoch (``<stage>_last.pt``, resumable) and keeps its best model by validation
loss (``<stage>_best.pt``), stops early, shows a progress bar and appends to ``log.csv``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoints import save_checkpoint, upgrade_state_dict
from .data import Sample, batches, collate
from .features import BackboneFeatures
from .graph import radius_graph
from .losses import LossWeights, weighted_loss
from .model import HIPModel

STAGES = ("energy_forces", "hessian", "end_to_end", "hessian_first")


@dataclass(frozen=True)
class TrainSettings:
    stage: str = "energy_forces"
    epochs: int = 50
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    patience: int = 8
    max_minutes: float | None = None
    device: str = "cpu"
    seed: int = 0
    energy_weight: float = 1.0
    forces_weight: float = 10.0
    hessian_weight: float = 1.0
    subspace_weight: float = 1.0
    subspace_k: int = 8
    low_subspace_weight: float = 0.0
    #: on by default since the loss ablation (``benchmarks/REPORT.md``); acts in the Hessian stages only
    sign_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA device is available")

    def weights(self) -> LossWeights:
        ef = self.stage in ("energy_forces", "end_to_end")
        hs = self.stage in ("hessian", "end_to_end", "hessian_first")
        return LossWeights(
            energy=self.energy_weight if ef or self.stage == "hessian_first" else 0.0,
            forces=self.forces_weight if ef else 0.0,
            hessian=self.hessian_weight if hs else 0.0,
            subspace=self.subspace_weight if hs else 0.0,
            k=self.subspace_k,
            low_subspace=self.low_subspace_weight if hs else 0.0,
            sign=self.sign_weight if hs else 0.0,
        )


def fit_normalisation(model: HIPModel, samples: list[Sample]) -> dict:
    """Per-element reference energies (least squares on composition), force and Hessian scales."""
    elements = list(model.config.elements)
    counts = np.array([[np.sum(s.numbers == z) for z in elements] for s in samples], dtype=np.float64)
    energies = np.array([s.energy for s in samples])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    force_rms = float(np.sqrt(np.mean(np.concatenate([s.forces.reshape(-1) for s in samples]) ** 2)))
    hessians = [s.hessian.reshape(-1) for s in samples if s.hessian is not None]
    hess_rms = float(np.sqrt(np.mean(np.concatenate(hessians) ** 2))) if hessians else 1.0
    with torch.no_grad():
        model.atomic_energies.copy_(torch.as_tensor(e0))
        model.energy_scale.fill_(max(force_rms, 1e-3))
        model.hessian_scale.fill_(max(hess_rms, 1e-3))
    return {"atomic_energies": e0.tolist(), "force_rms": force_rms, "hessian_rms": hess_rms}


def average_neighbours(samples: list[Sample], cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` (A): the message-sum normalisation of the config."""
    counts = []
    for s in samples:
        d = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=-1)
        counts.append(((d < cutoff).sum() - len(s.numbers)) / len(s.numbers))
    return float(np.mean(counts))


def trainable_parameters(model: HIPModel, stage: str) -> list[torch.nn.Parameter]:
    """Backbone for ``energy_forces``, the Hessian head for ``hessian``, all for the other stages."""
    for p in model.parameters():
        p.requires_grad_(False)
    modules = {
        "energy_forces": [model.backbone],
        "hessian": [model.hessian_head],
        "end_to_end": [model.backbone, model.hessian_head],
        "hessian_first": [model.backbone, model.hessian_head],
    }[stage]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def stage_forward(model: HIPModel, data, stage: str, training: bool, features: torch.Tensor | None = None) -> dict:
    """The forward pass a stage trains on (used by :mod:`aiida_hip.hip.campaign` as well).

    ``features``: the frozen backbone's node features of this batch (:class:`~.features.BackboneFeatures`),
    so that the ``hessian`` stage runs the head alone.
    """
    if stage == "hessian":  # frozen backbone: features without a graph, gradients through the head only
        with torch.no_grad():
            if features is None:
                _, h, edges = model.energy(data)
            else:
                h, edges = features, radius_graph(data.positions, data.batch, data.num_graphs, model.config.cutoff)
        with torch.set_grad_enabled(training):
            return model.hessian_blocks(data, h, edges)
    if stage == "hessian_first":  # positions need no gradient: the one backward pass is the loss's
        with torch.set_grad_enabled(training):
            energy, h, edges = model.energy(data)  # (G,), (N, D), (2, E)
            return {"energy": energy, **model.hessian_blocks(data, h, edges)}
    compute_hessian = stage == "end_to_end"
    return model(data, compute_forces=True, compute_hessian=compute_hessian, create_graph=training)


_forward = stage_forward  # the earlier private name


def evaluate_loss(model: HIPModel, samples: list[Sample], settings: TrainSettings) -> dict:
    """Mean loss terms over ``samples`` (per batch, weighted by batch size)."""
    model.eval()
    weights, totals, n = settings.weights(), {}, 0
    for chunk in batches(samples, settings.batch_size):
        data, target = collate(chunk, model.dtype, settings.device)
        pred = _forward(model, data, settings.stage, training=False)
        total, terms = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights, data)
        terms["loss"] = float(total.detach())
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + v * len(chunk)
        n += len(chunk)
    return {k: v / max(n, 1) for k, v in totals.items()}


#: Columns of ``log.csv``, one row per epoch.
LOG_FIELDS = (
    "stage",
    "epoch",
    "lr",
    "seconds",
    "train_loss",
    "val_loss",
    "val_energy",
    "val_forces",
    "val_hessian",
    "val_subspace",
)


def _optimiser(
    params: list[torch.nn.Parameter], settings: TrainSettings
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """AMSGrad AdamW, and a plateau schedule that halves the lr well before early stopping gives up."""
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay, amsgrad=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=max(1, settings.patience // 3)
    )
    return optimizer, scheduler


def _resume_or_start(
    model: HIPModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    settings: TrainSettings,
    last: Path,
    train_samples: list[Sample],
    resume: bool,
) -> tuple[dict, np.random.Generator]:
    """Load ``last`` (same model config only) or start at epoch 0; returns the loop state and shuffle RNG."""
    state = {"epoch": 0, "best": float("inf"), "bad_epochs": 0, "history": []}
    rng = np.random.default_rng(settings.seed)
    if resume and last.is_file():
        payload = torch.load(last, map_location=settings.device, weights_only=True)
        if payload.get("config") != model.config.to_dict():
            raise ValueError(f"{last} was written for a different model configuration; use a new workdir")
        model.load_state_dict(upgrade_state_dict(payload["model"]))
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state = json.loads(payload["state"])
        rng = np.random.default_rng(settings.seed + state["epoch"])
    elif settings.stage == "energy_forces":
        state["normalisation"] = fit_normalisation(model, train_samples)
    return state, rng


def _train_epoch(
    model: HIPModel,
    train_samples: list[Sample],
    settings: TrainSettings,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    rng: np.random.Generator,
    epoch: int,
    progress: bool,
    features: BackboneFeatures | None = None,
) -> float:
    """One pass over the shuffled training set; returns the mean training loss per sample."""
    model.train()
    weights, running, seen = settings.weights(), 0.0, 0
    bar = tqdm(
        total=len(train_samples),
        disable=not progress,
        unit="mol",
        desc=f"{settings.stage} epoch {epoch + 1}/{settings.epochs}",
    )
    for chunk in batches(train_samples, settings.batch_size, rng):
        # data: G molecules, N atoms; target: energy (G,), forces (N, 3), hessian_flat (sum 9 n_i^2,)
        data, target = collate(chunk, model.dtype, settings.device)
        pred = stage_forward(model, data, settings.stage, True, None if features is None else features.of(chunk))
        loss, _ = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights, data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        running += float(loss.detach()) * len(chunk)
        seen += len(chunk)
        bar.update(len(chunk))
        bar.set_postfix(loss=f"{running / seen:.4f}")
    bar.close()
    return running / seen


def _log_epoch(
    state: dict, settings: TrainSettings, lr: float, seconds: float, train_loss: float, val: dict, log_path: Path
) -> None:
    """Append the epoch's row to the history and to ``log.csv``."""
    row = {
        "stage": settings.stage,
        "epoch": state["epoch"],
        "lr": lr,
        "seconds": round(seconds, 1),
        "train_loss": train_loss,
        "val_loss": val["loss"],
        **{f"val_{k}": val.get(k, "") for k in ("energy", "forces", "hessian", "subspace")},
    }
    state["history"].append(row)
    with open(log_path, "a", newline="") as fh:
        csv.writer(fh).writerow([row.get(f, "") for f in LOG_FIELDS])


def _keep_best(model: HIPModel, state: dict, val: dict, settings: TrainSettings, best_path: Path) -> None:
    """Save ``best_path`` on a new best validation loss, else count a bad epoch (early stopping)."""
    if val["loss"] < state["best"]:
        state["best"], state["bad_epochs"] = val["loss"], 0
        save_checkpoint(
            model,
            best_path,
            {"stage": settings.stage, "epoch": state["epoch"], "val": val, "settings": asdict(settings)},
        )
    else:
        state["bad_epochs"] += 1


def _save_last(
    model: HIPModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    state: dict,
    last: Path,
) -> None:
    """The resumable checkpoint: model, optimiser, scheduler and loop state (JSON)."""
    torch.save(
        {
            "config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": json.dumps(state),
        },
        last,
    )


def train(
    model: HIPModel,
    train_samples: list[Sample],
    val_samples: list[Sample],
    settings: TrainSettings,
    workdir: str | Path,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Run one stage; returns the history. The best model is ``workdir/<stage>_best.pt``."""
    if not train_samples or not val_samples:
        raise ValueError("training needs non-empty training and validation sets")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    last, best_path = workdir / f"{settings.stage}_last.pt", workdir / f"{settings.stage}_best.pt"
    torch.manual_seed(settings.seed)
    model.to(settings.device)
    params = trainable_parameters(model, settings.stage)
    optimizer, scheduler = _optimiser(params, settings)
    state, rng = _resume_or_start(model, optimizer, scheduler, settings, last, train_samples, resume)
    started = time.perf_counter()
    log_path = workdir / "log.csv"
    if not log_path.exists():
        with open(log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(LOG_FIELDS)

    # the backbone is frozen in the hessian stage: its features once, not at every step
    features = BackboneFeatures(model, train_samples, settings.device) if settings.stage == "hessian" else None
    while state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        t0 = time.perf_counter()
        train_loss = _train_epoch(
            model, train_samples, settings, optimizer, params, rng, state["epoch"], progress, features
        )
        val = evaluate_loss(model, val_samples, settings)
        scheduler.step(val["loss"])
        state["epoch"] += 1
        lr = optimizer.param_groups[0]["lr"]
        _log_epoch(state, settings, lr, time.perf_counter() - t0, train_loss, val, log_path)
        _keep_best(model, state, val, settings, best_path)
        _save_last(model, optimizer, scheduler, state, last)
        if settings.max_minutes and time.perf_counter() - started > 60 * settings.max_minutes:
            break
    for p in model.parameters():
        p.requires_grad_(True)
    return state
