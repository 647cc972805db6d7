"""Fine-tuning a trained HIP on the few reference Hessians one batch of searches computes.

A general model does not know the user's chemistry or level of theory; the TS and end-point Hessians a
batch pays for anyway do. There are tens to hundreds of them, so training is short and the risk is
over-fitting: the fast path trains the Hessian head alone on backbone features computed once (CPU-seconds),
the slow path trains end to end on the Hessian loss (no energy or force term: a batch's DFT energies carry
another offset than the xTB data the backbone learnt). Only Hessians are fitted, because the two-level
search uses nothing else from the model. Held-out reactions (:func:`split_by_reaction`) decide whether a
fine-tuned model is any better; the caller makes that decision, never this module.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import Sample, batches, collate
from .features import BackboneFeatures
from .losses import LossWeights, weighted_loss
from .model import HIPModel, build_model
from .train import stage_forward, trainable_parameters

MODES = ("head", "end_to_end")
#: the training stage of each mode (:func:`aiida_hip.hip.train.stage_forward`)
_STAGE = {"head": "hessian", "end_to_end": "hessian_first"}


class FinetuneError(ValueError):
    """Settings or data a fine-tune cannot start from."""


@dataclass(frozen=True)
class FinetuneSettings:
    # chosen on the keto-enol family (benchmarks/learn_family.py, development): 8-24 reactions' labels, the other
    # reactions' Hessian MAE: the head at 3e-3 for 60 epochs on the plain Hessian MAE beat end-to-end training
    # and the spectral terms (which the campaign's large data needs, and a few dozen labels over-fit)
    mode: str = "head"
    epochs: int = 60
    #: wall-time cap of the training loop (minutes); the epoch in progress finishes
    max_minutes: float = 5.0
    lr: float = 3e-3
    batch_size: int = 4
    grad_clip: float = 1.0
    seed: int = 0
    subspace_weight: float = 0.0
    sign_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FinetuneError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise FinetuneError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_minutes", "lr"):
            if not getattr(self, name) > 0:
                raise FinetuneError(f"{name} must be positive, got {getattr(self, name)}")

    def weights(self) -> LossWeights:
        return LossWeights(energy=0.0, forces=0.0, subspace=self.subspace_weight, sign=self.sign_weight)

    def to_dict(self) -> dict:
        return asdict(self)


def holdout_of(reaction: str, fraction: float, salt: str = "") -> bool:
    """Whether ``reaction`` is held out: a hash, so a growing batch never moves a reaction between sides."""
    value = int(hashlib.sha256(f"{salt}:{reaction}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return value < fraction


def split_by_reaction(
    samples: Sequence[Sample], fraction: float = 0.25, salt: str = ""
) -> tuple[list[Sample], list[Sample]]:
    """``(train, held_out)``: every geometry of a reaction on one side. With two or more reactions each side
    gets at least one, so a before/after comparison always exists."""
    names = sorted({s.reaction for s in samples})
    held = {name for name in names if holdout_of(name, fraction, salt)}
    if len(names) >= 2 and not held:
        held = {min(names, key=lambda n: hashlib.sha256(f"{salt}:{n}".encode()).hexdigest())}
    if len(names) >= 2 and held == set(names):
        held.discard(max(held))
    return [s for s in samples if s.reaction not in held], [s for s in samples if s.reaction in held]


def hessian_mae(model: HIPModel, samples: Sequence[Sample], batch_size: int = 16) -> float | None:
    """Mean absolute Hessian error (eV/A^2) over every element of every sample's Hessian."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for chunk in batches(list(samples), batch_size):
            data, target = collate(chunk, model.dtype, model.device)
            pred = model(data, compute_forces=False, compute_hessian=True)
            total += float((pred["hessian_flat"] - target["hessian_flat"]).abs().sum())
            count += int(target["hessian_flat"].numel())
    return total / count if count else None


def check_samples(model: HIPModel, samples: Sequence[Sample]) -> None:
    """Refuse what cannot train: no geometry, one without a Hessian, an element the model does not know."""
    if not samples:
        raise FinetuneError("no training geometries: the selection is empty")
    if any(s.hessian is None for s in samples):
        raise FinetuneError("every fine-tuning geometry needs a reference Hessian")
    known = set(model.config.elements)
    unknown = sorted({int(z) for s in samples for z in s.numbers} - known)
    if unknown:
        raise FinetuneError(f"the data has element(s) {unknown} that this checkpoint does not know ({sorted(known)})")


def finetune(model: HIPModel, samples: Sequence[Sample], settings: FinetuneSettings | None = None) -> tuple:
    """``(new_model, report)``: a copy of ``model`` trained on ``samples``; ``model`` itself is left as it was.

    ``report``: settings, epochs run, seconds, and the training Hessian MAE before and after."""
    settings = settings or FinetuneSettings()
    samples = list(samples)
    check_samples(model, samples)
    torch.manual_seed(settings.seed)
    # a fresh model with the same weights: a deep copy would carry e3nn's traced constants into the state dict
    new = build_model(model.config, dtype=model.dtype)
    new.load_state_dict(model.state_dict())
    new = new.to(model.device)
    stage = _STAGE[settings.mode]
    params = trainable_parameters(new, stage)
    features = BackboneFeatures(new, samples, new.device) if settings.mode == "head" else None
    optimizer = torch.optim.AdamW(params, lr=settings.lr, amsgrad=True)
    rng, weights = np.random.default_rng(settings.seed), settings.weights()
    before, t0, epochs = hessian_mae(new, samples), time.perf_counter(), 0
    for _ in range(settings.epochs):
        new.train()
        for chunk in batches(samples, settings.batch_size, rng):
            # data: G molecules, N atoms; target: hessian_flat (sum 9 n_i^2,)
            data, target = collate(chunk, new.dtype, new.device)
            pred = stage_forward(new, data, stage, True, None if features is None else features.of(chunk))
            loss, _ = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights, data)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
        epochs += 1
        if time.perf_counter() - t0 > 60 * settings.max_minutes:
            break
    for p in new.parameters():
        p.requires_grad_(False)
    new.eval()
    report = {
        "settings": settings.to_dict(),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - t0, 2),
        "n_geometries": len(samples),
        "n_reactions": len({s.reaction for s in samples}),
        "train_hessian_mae_before": before,
        "train_hessian_mae_after": hessian_mae(new, samples),
    }
    return new, report
