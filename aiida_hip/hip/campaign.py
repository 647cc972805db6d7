"""A step-based training campaign that survives every stop: one small state file, exact resumes.

The campaign trains in whatever minutes a session has and keeps everything in ``state.pt``: model,
optimiser and scheduler state, the global step and stage, the RNG state, the data and config hashes
and the history. Calling :func:`run` again continues where the last call stopped; two calls of
``k`` and ``m`` steps give the same parameters as one call of ``k + m`` steps, because the batch
order is a pure function of ``(seed, data version, step)``: step ``s`` takes batch ``s mod B`` of the
permutation ``default_rng([seed, data_version, s // B])`` of the training set (``B`` batches per
epoch), never "the next batch of whatever iterator this process happened to create".

A resume is refused (:class:`StateMismatchError`) when the config hash differs, or when the data
differ other than by appended shards (``data_parts``: the ordered shard hashes; a state trained on
shards ``[a, b]`` accepts ``[a, b, c]``, records the growth in its history and restarts its sample
stream on the larger set at that step).

Model layer: torch and numpy only (no AiiDA, ASE or chemistry codes).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoints import DEFAULT_CHECKPOINT, convert_model, load_model, sha256, upgrade_state_dict
from .config import HIPConfig
from .data import Sample, collate
from .features import BackboneFeatures
from .losses import weighted_loss
from .model import HIPModel, build_model
from .train import STAGES, TrainSettings, evaluate_loss, fit_normalisation, stage_forward, trainable_parameters

FORMAT = "aiida-hip-campaign/1"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: The architecture of the shipped checkpoint (see ``weights/MODEL_CARD.md``).
SHIPPED_MODEL = HIPConfig(avg_num_neighbors=9.79)


class CampaignError(ValueError):
    """A campaign state or config that cannot be used."""


class StateMismatchError(CampaignError):
    """The state file was written for other data or another config: resuming would mix two campaigns."""

    def __init__(self, what: str, path: Path, old: str, new: str, detail: str = "") -> None:
        self.what, self.old, self.new = what, old, new
        super().__init__(
            f"refusing to resume {path}: the {what} hash changed (state: {old[:16]}, now: {new[:16]})"
            + (f"; {detail}" if detail else "")
            + f". Restore the {what} the state was trained with, or move {path.name} away to start a new campaign."
        )


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: ``name`` in ``energy_forces``/``hessian``/``end_to_end``.

    ``steps=None`` makes the stage open-ended (only the last one may be); ``lr=None`` uses the
    campaign's ``lr``.
    """

    name: str
    steps: int | None
    lr: float | None = None


#: Config fields added after states were committed, with the value that leaves training as it was: at
#: that value they are left out of :meth:`CampaignConfig.hash`.
_ADDED_LATER = {
    "low_subspace_weight": 0.0,
    "sign_weight": 0.0,
    "ef_every": 0,
    "ef_data": True,
    "realistic_barrier": 4.0,
    "realistic_repeat": 1,
}


@dataclass(frozen=True)
class CampaignConfig:
    """Everything that decides the trained parameters (and so the config hash).

    How often to save, log or validate is not part of it: those are arguments of :func:`run`.
    The learning rate of a stage at stage step ``t`` is ``lr * min(1, (t + 1) / warmup_steps) *
    max(min_lr_fraction, 0.5 ** (t / half_life_steps))``.
    """

    stages: tuple[Stage, ...] = (
        Stage("energy_forces", 3000),
        Stage("hessian", 6000),
        Stage("end_to_end", None, lr=2e-4),
    )
    lr: float = 1e-3
    warmup_steps: int = 100
    half_life_steps: int = 3000
    min_lr_fraction: float = 0.05
    batch_size: int = 16
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    energy_weight: float = 1.0
    forces_weight: float = 10.0
    hessian_weight: float = 1.0
    subspace_weight: float = 1.0
    subspace_k: int = 8
    #: the spectral terms of :func:`~.losses.spectral_losses`, added after the first states were saved (at
    #: 0.0 they stay out of the hash, and a stored config without them reads as 0.0). The sign term is on by
    #: default: in the loss ablation it made more imaginary-mode counts right at the same Hessian MAE
    #: (``benchmarks/REPORT.md``); the low-mode subspace term did not help and stays off.
    low_subspace_weight: float = 0.0
    sign_weight: float = 1.0
    #: in ``end_to_end``, every ``ef_every``-th step trains on an energy+force batch drawn from all
    #: labelled geometries (the ``energy_forces`` pool), so the backbone keeps seeing the E+F data while
    #: the head learns; 0: never
    ef_every: int = 0
    #: train on the energy+force files beside the shards (``data/campaign/ef``: thermal samples, mostly hot);
    #: ``False`` leaves them out of the data and its hash, and the E+F steps of ``hessian_first`` (``ef_every``)
    #: then draw from the Hessian-labelled training geometries
    ef_data: bool = True
    #: the Hessian geometries of reactions whose NEB barrier is at most ``realistic_barrier`` (eV) enter the
    #: training pool ``realistic_repeat`` times: the barriers users screen (0.5-3.5 eV at this level) weigh
    #: more than the high-barrier tail of the enumeration (see :func:`weighted_pool`)
    realistic_barrier: float = 4.0
    realistic_repeat: int = 1
    seed: int = 0
    dtype: str = "float32"
    #: Weights to start from when no state exists: ``"shipped"`` (the packaged checkpoint, so the
    #: campaign fine-tunes it), ``"random"`` (fresh init, normalisation fitted on the training set)
    #: or the path of a checkpoint.
    init: str = "shipped"
    model: HIPConfig = SHIPPED_MODEL

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", HIPConfig.from_dict(self.model))
        if not stages:
            raise CampaignError("the stage schedule is empty")
        for k, s in enumerate(stages):
            if s.name not in STAGES:
                raise CampaignError(f"stage {k}: name must be one of {STAGES}, got {s.name!r}")
            if s.steps is None and k != len(stages) - 1:
                raise CampaignError(f"stage {k} ({s.name}): only the last stage may be open-ended (steps=None)")
            if s.steps is not None and s.steps < 1:
                raise CampaignError(f"stage {k} ({s.name}): steps must be >= 1 or None")
        if self.batch_size < 1 or self.warmup_steps < 1 or self.half_life_steps < 1:
            raise CampaignError("batch_size, warmup_steps and half_life_steps must be >= 1")
        if self.ef_every < 0 or self.ef_every == 1:
            raise CampaignError("ef_every must be 0 (off) or >= 2 (every ef_every-th end_to_end/hessian_first step)")
        if self.realistic_repeat < 1:
            raise CampaignError("realistic_repeat must be >= 1 (1: every geometry once)")
        if self.dtype not in DTYPES:
            raise CampaignError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> CampaignConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise CampaignError(f"unknown CampaignConfig fields: {sorted(unknown)}")
        data = dict(data)
        for name, neutral in _ADDED_LATER.items():  # stored before the field existed: trained without it
            data.setdefault(name, neutral)
        if "stages" in data:
            data["stages"] = tuple(Stage(**s) if isinstance(s, dict) else Stage(*s) for s in data["stages"])
        if "model" in data and isinstance(data["model"], dict):
            data["model"] = HIPConfig.from_dict(data["model"])
        return cls(**data)

    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the config: stable across processes and sessions."""
        data = {k: v for k, v in self.to_dict().items() if not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
        data["model"] = self.model.hash_dict()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def stage_at(self, step: int) -> tuple[int, int, int | None]:
        """``(stage index, first step, end step or None)`` of global ``step``; index ``len(stages)`` when done."""
        start = 0
        for k, s in enumerate(self.stages):
            if s.steps is None or step < start + s.steps:
                return k, start, None if s.steps is None else start + s.steps
            start += s.steps
        return len(self.stages), start, start

    @property
    def total_steps(self) -> int | None:
        return None if self.stages[-1].steps is None else sum(s.steps for s in self.stages)

    def lr_factor(self, t: int) -> float:
        """Multiplier of the stage's learning rate at stage step ``t``."""
        return min(1.0, (t + 1) / self.warmup_steps) * max(self.min_lr_fraction, 0.5 ** (t / self.half_life_steps))

    def settings(self, stage: str) -> TrainSettings:
        """The :class:`TrainSettings` of a stage (loss weights, batch size) for ``evaluate_loss``."""
        return TrainSettings(
            stage=stage,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            seed=self.seed,
            energy_weight=self.energy_weight,
            forces_weight=self.forces_weight,
            hessian_weight=self.hessian_weight,
            subspace_weight=self.subspace_weight,
            subspace_k=self.subspace_k,
            low_subspace_weight=self.low_subspace_weight,
            sign_weight=self.sign_weight,
        )


def weighted_pool(train: Sequence[Sample], config: CampaignConfig) -> list[Sample]:
    """The training pool: each geometry once, those of realistic-barrier reactions ``realistic_repeat`` times.

    A pure function of the samples and the config (order kept, repeats appended), so the deterministic
    sample stream stays a function of ``(seed, data version, step)``. Geometries without a recorded
    barrier count once.
    """
    extra = [s for s in train if s.barrier is not None and s.barrier <= config.realistic_barrier] * (
        config.realistic_repeat - 1
    )
    return [*train, *extra]


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


@dataclass
class CampaignState:
    """Everything a resume needs; ``save`` writes plain tensors and dicts (``weights_only`` loadable)."""

    config: dict
    config_hash: str
    data_hash: str
    data_parts: list[str]
    step: int
    stage: str
    model: dict
    optimizer: dict | None = None
    scheduler: dict | None = None
    #: ``{"torch": ByteTensor, "numpy": JSON of the sampler's bit-generator state}``.
    rng: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    #: Data growths so far; the sample stream of version ``v`` starts at ``data_since_step``.
    data_version: int = 0
    data_since_step: int = 0
    meta: dict = field(default_factory=dict)

    def campaign_config(self) -> CampaignConfig:
        return CampaignConfig.from_dict(self.config)

    def build_model(self, dtype: torch.dtype | None = None) -> HIPModel:
        """The model at this state (eval mode); ``dtype`` defaults to the campaign's."""
        config = self.campaign_config()
        model = build_model(config.model, dtype=dtype or DTYPES[config.dtype])
        model.load_state_dict(upgrade_state_dict(self.model))
        return model.eval()

    def save(self, path: str | Path) -> Path:
        """Atomic write: a temporary file in the same folder, then ``os.replace``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, **asdict(self)}
        payload["history"] = json.dumps(self.history)
        payload["meta"] = json.dumps(self.meta)
        payload["config"] = json.dumps(self.config)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CampaignState:
        path = Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CampaignError(f"{path} is not a readable campaign state: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CampaignError(f"{path} is not a campaign state (no 'format': {FORMAT!r})")
        payload = dict(payload)
        payload.pop("format")
        for key in ("history", "meta", "config"):
            payload[key] = json.loads(payload[key])
        return cls(**payload)


class _Sampler:
    """Batch ``s`` of the stream: a deterministic function of ``(seed, data_version, s)``."""

    def __init__(self, n: int, batch_size: int, seed: int, version: int) -> None:
        self.n, self.bs, self.seed, self.version = n, batch_size, seed, version
        self.per_epoch = max(1, n // batch_size)  # full batches only: every step sees batch_size samples
        self._epoch, self._perm, self.numpy_state = -1, None, None

    def indices(self, s: int) -> np.ndarray:
        epoch, pos = divmod(s, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, self.version, epoch])
            self._epoch, self._perm = epoch, rng.permutation(self.n)
            self.numpy_state = {"key": [self.seed, self.version, epoch], "state": rng.bit_generator.state}
        return self._perm[pos * self.bs : (pos + 1) * self.bs]


def _init_model(config: CampaignConfig, train: Sequence[Sample], init_checkpoint: str | Path | None) -> tuple:
    dtype = DTYPES[config.dtype]
    torch.manual_seed(config.seed)
    meta: dict = {"init": config.init}
    if config.init == "random":
        model = build_model(config.model, dtype=dtype)
        meta["normalisation"] = fit_normalisation(model, list(train))
        return model, meta
    path = Path(init_checkpoint or (DEFAULT_CHECKPOINT if config.init == "shipped" else config.init))
    model = load_model(path, dtype=dtype)  # the package's loader: it also reads older key layouts
    if model.config != config.model and replace(model.config, hessian_sum_rule=config.model.hessian_sum_rule) == (
        config.model
    ):  # the same network with the sum-rule head: every shared weight carries over
        model = convert_model(model, hessian_sum_rule=config.model.hessian_sum_rule)
        meta["converted"] = {"hessian_sum_rule": config.model.hessian_sum_rule}
    if model.config != config.model:
        differences = "; ".join(_diff(model.config.to_dict(), config.model.to_dict()))
        raise CampaignError(
            f"the campaign's model config differs from the checkpoint it starts from ({path}): {differences}"
        )
    meta.update({"init_checkpoint": str(path), "init_sha256": sha256(path)})
    return model.train(), meta


#: Config fields that ``amend=True`` (``--amend``) lets a running campaign change: the loss weights and the
#: E+F interleave. They change what the next steps optimise, not the parameters, the optimiser's shape or
#: the sample stream, so the state stays a valid starting point; every amendment goes into the history.
AMENDABLE = frozenset(
    {
        "energy_weight",
        "forces_weight",
        "hessian_weight",
        "subspace_weight",
        "subspace_k",
        "low_subspace_weight",
        "sign_weight",
        "ef_every",
    }
)


def _amend(state: CampaignState, path: Path, config: CampaignConfig, say: Callable[[str], None]) -> None:
    """Adopt ``config`` if it differs from the state's only in :data:`AMENDABLE` fields; else refuse."""
    old, new = state.campaign_config().to_dict(), config.to_dict()
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    fixed = [k for k in changed if k not in AMENDABLE]
    if fixed:
        detail = "; ".join(_diff({k: old.get(k) for k in fixed}, {k: new.get(k) for k in fixed}))
        raise StateMismatchError(
            "config",
            path,
            state.config_hash,
            config.hash(),
            f"only {sorted(AMENDABLE)} may be amended; changed: {detail}",
        )
    lines = _diff({k: old.get(k) for k in changed}, {k: new.get(k) for k in changed})
    state.history.append({"time": _now(), "step": state.step, "event": "config amended", "changes": lines})
    state.config, state.config_hash = new, config.hash()
    say(f"config amended at step {state.step}: {'; '.join(lines)}")


def _check(
    state: CampaignState,
    path: Path,
    config: CampaignConfig,
    data_hash: str,
    data_parts: Sequence[str],
    amend: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> bool:
    """Raise :class:`StateMismatchError` unless the state may continue on this config and data."""
    if state.config_hash != config.hash():
        if amend:
            _amend(state, path, config, say)
        else:
            detail = "; ".join(_diff(state.config, config.to_dict())) or "no field differs (hash definition changed?)"
            raise StateMismatchError("config", path, state.config_hash, config.hash(), f"changed: {detail}")
    if state.data_hash == data_hash:
        return False
    old, new = list(state.data_parts), list(data_parts)
    if (
        old
        and len(new) > len(old)
        and all(_stream(new, kind)[: len(_stream(old, kind))] == _stream(old, kind) for kind in (False, True))
    ):
        return True  # append-only growth of the Hessian shards and of the energy+force files
    first = next((k for k, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    if not old or not new:
        detail = "no list of parts (shard hashes) to tell appended data from changed data"
    elif first is not None:
        detail = f"part {first} differs, so the data are not an append-only extension ({len(old)} -> {len(new)} parts)"
    else:
        detail = f"the data shrank from {len(old)} to {len(new)} parts"
    raise StateMismatchError("data", path, state.data_hash, data_hash, detail)


#: prefix of the parts (file hashes) of the energy+force data, which grows on its own beside the shards
EF_PART = "ef:"


def _stream(parts: Sequence[str], energy_forces: bool) -> list[str]:
    return [p for p in parts if p.startswith(EF_PART) is energy_forces]


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _accept_growth(
    state: CampaignState, data_hash: str, data_parts: Sequence[str], n_train: int, say: Callable[[str], None]
) -> None:
    """Adopt appended shards: a new data version whose sample stream starts at the current step."""
    event = {
        "time": _now(),
        "step": state.step,
        "event": f"data grew from {len(state.data_parts)} to {len(data_parts)} parts",
        "data_hash": data_hash,
    }
    state.history.append(event)
    state.data_hash, state.data_parts = data_hash, list(data_parts)
    state.data_version += 1
    state.data_since_step = state.step
    say(f"{event['event']}: the sample stream restarts on {n_train} training geometries")


def _resume(
    state_path: Path,
    train: list[Sample],
    config: CampaignConfig,
    data_hash: str,
    data_parts: Sequence[str],
    say: Callable[[str], None],
    amend: bool = False,
) -> tuple[CampaignState, HIPModel]:
    """Load the state, refuse other data or config (unless amended), and restore the model and torch's RNG."""
    state = CampaignState.load(state_path)
    grown = _check(state, state_path, config, data_hash, data_parts, amend, say)
    if grown:
        _accept_growth(state, data_hash, data_parts, len(train), say)
    # Same data but another count: the split or the selection changed, so the stream would too.
    if not grown and state.meta.get("n_train", len(train)) != len(train):
        raise CampaignError(
            f"{state_path} was trained on {state.meta['n_train']} training geometries of data "
            f"{data_hash[:16]}, now {len(train)} of the same data: the split or the selection changed"
        )
    model = state.build_model()
    torch.set_rng_state(state.rng["torch"])
    say(f"resumed {state_path} at step {state.step} ({state.stage})")
    return state, model


def _start(
    state_path: Path,
    train: list[Sample],
    config: CampaignConfig,
    data_hash: str,
    data_parts: Sequence[str],
    init_checkpoint: str | Path | None,
    say: Callable[[str], None],
) -> tuple[CampaignState, HIPModel]:
    """A fresh state at step 0 and the model of ``config.init`` (the state's weights are filled on save)."""
    model, meta = _init_model(config, train, init_checkpoint)
    state = CampaignState(
        config=config.to_dict(),
        config_hash=config.hash(),
        data_hash=data_hash,
        data_parts=list(data_parts),
        step=0,
        stage=config.stages[0].name,
        model={},
        meta={"created": _now(), **meta},
    )
    state.history.append({"time": _now(), "step": 0, "event": f"campaign start ({config.init} weights)"})
    say(f"new campaign at {state_path} from {config.init} weights")
    return state, model


def _warn_if_stream_changed(sampler: _Sampler, state: CampaignState) -> None:
    """Warn when this numpy draws another permutation for the saved epoch than the one that saved it."""
    if not state.rng.get("numpy"):
        return
    saved = json.loads(state.rng["numpy"])
    if saved["key"][1] != state.data_version:
        return
    sampler.indices(max(0, state.step - 1 - state.data_since_step))
    if sampler.numpy_state["key"] == saved["key"] and sampler.numpy_state["state"] != saved["state"]:
        warnings.warn(
            "numpy's default_rng gives another stream than when the state was saved: "
            "the batch order differs from an uninterrupted run",
            stacklevel=3,  # the caller of run()
        )


class _Session:
    """One call of :func:`run`: the model, optimiser, sampler and counters its steps share."""

    def __init__(
        self,
        state: CampaignState,
        model: HIPModel,
        sampler: _Sampler,
        config: CampaignConfig,
        train: list[Sample],
        val: list[Sample],
        *,
        state_path: Path,
        val_max: int,
        device: str,
        say: Callable[[str], None],
    ) -> None:
        self.state, self.model, self.config, self.train = state, model, config, train
        self.state_path, self.device, self.say = state_path, device, say
        self.dtype = DTYPES[config.dtype]
        self.sampler = sampler
        # At most val_max evenly spaced validation samples.
        self.val_sub = val[:: max(1, math.ceil(len(val) / val_max))] if val else []
        self.optimizer: torch.optim.AdamW | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.params: list[torch.nn.Parameter] = []
        self.opt_stage: int | None = None  # index of the stage the optimiser belongs to
        self.features: BackboneFeatures | None = None
        #: per stage, the samples and the batch stream it draws from (default: ``train``, ``sampler``)
        self.pools: dict[str, tuple[list[Sample], _Sampler]] = {}
        self.stage_name = state.stage
        self.started = self.last_save = self.last_log = time.time()
        self.steps_done = 0
        # Train loss summed over the samples since the last validation, and the throughput clock.
        self.window_loss, self.window_n, self.window_t = 0.0, 0, time.perf_counter()

    def validate(self, stage_name: str) -> dict | None:
        """Loss terms on the validation subset; leaves the model in train mode."""
        if not self.val_sub:
            return None
        result = evaluate_loss(self.model, self.val_sub, replace(self.config.settings(stage_name), device=self.device))
        self.model.train()
        return {k: float(v) for k, v in result.items()}

    def record(self, stage_name: str, train_loss: float | None) -> None:
        """Append a history row (lr, train loss, validation) at the current step and log it."""
        row = {
            "time": _now(),
            "step": self.state.step,
            "stage": stage_name,
            "lr": self.optimizer.param_groups[0]["lr"] if self.optimizer else None,
            "train_loss": train_loss,
            "val": self.validate(stage_name),
        }
        self.state.history.append(row)
        val_text = "" if row["val"] is None else f", val loss {row['val']['loss']:.4f}"
        self.say(f"step {self.state.step} ({stage_name}): validation{val_text}")

    def snapshot(self) -> None:
        """Copy model, optimiser, scheduler and RNG states into the state and save it atomically."""
        state = self.state
        state.model = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        state.optimizer = self.optimizer.state_dict() if self.optimizer else state.optimizer
        state.scheduler = self.scheduler.state_dict() if self.scheduler else state.scheduler
        numpy_state = self.sampler.numpy_state
        state.rng = {
            "torch": torch.get_rng_state(),
            "numpy": json.dumps(numpy_state) if numpy_state else state.rng.get("numpy"),
        }
        state.save(self.state_path)

    def should_stop(
        self, max_steps: int | None, deadline: float | None, stop_requested: Callable[[], bool] | None
    ) -> bool:
        """The stop conditions, checked between steps: step budget, deadline, stop request, schedule end."""
        if max_steps is not None and self.steps_done >= max_steps:
            return True
        if deadline is not None and time.time() >= deadline:
            return True
        if stop_requested is not None and stop_requested():
            self.say(f"stop requested at step {self.state.step}")
            return True
        if self.config.stage_at(self.state.step)[0] == len(self.config.stages):
            self.say(f"schedule finished at step {self.state.step}")
            return True
        return False

    def enter_stage(self, k: int, first: int) -> None:
        """A new optimiser and schedule for stage ``k``, restored from the state if it stopped inside it."""
        state, config, stage = self.state, self.config, self.config.stages[k]
        if self.opt_stage is not None:
            self.record(self.stage_name, None)
        self.params = trainable_parameters(self.model, stage.name)
        lr = stage.lr if stage.lr is not None else config.lr
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=config.weight_decay)
        # A lambda, not the bound method: LambdaLR.state_dict() would store a method's __dict__.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda t: config.lr_factor(t))
        # The saved optimiser belongs to this stage if the state stopped inside it.
        if state.optimizer is not None and state.stage == stage.name and state.step > first:
            self.optimizer.load_state_dict(state.optimizer)
            self.scheduler.load_state_dict(state.scheduler)
        elif state.step == first:
            state.history.append({"time": _now(), "step": state.step, "event": f"stage {stage.name}"})
        else:
            raise CampaignError(f"{self.state_path}: no optimiser state for step {state.step} of stage {stage.name}")
        self.opt_stage, self.stage_name, state.stage = k, stage.name, stage.name
        self.say(f"stage {stage.name} at step {state.step} (stage step {state.step - first}), lr {lr:g}")
        self.features = None
        if stage.name == "hessian":  # the backbone is frozen for the whole stage: its features once
            t0 = time.perf_counter()
            self.features = BackboneFeatures(self.model, self.train, self.device)
            self.say(
                f"backbone features of {len(self.features)} geometries cached "
                f"({self.features.nbytes / 2**20:.0f} MiB, {time.perf_counter() - t0:.0f} s)"
            )

    def batch_kind(self, stage_name: str) -> str:
        """The stage whose data and loss this step uses: ``energy_forces`` on the E+F steps (``ef_every``).

        ``end_to_end`` has them only with an energy+force pool; ``hessian_first`` always (from the
        energy+force pool if there is one, else from the Hessian training geometries, which carry forces).
        """
        k = self.config.ef_every
        if not k or (self.state.step + 1) % k:
            return stage_name
        if stage_name == "hessian_first" or (stage_name == "end_to_end" and "energy_forces" in self.pools):
            return "energy_forces"
        return stage_name

    def step(self, stage_name: str) -> None:
        """One optimiser step on batch ``step - data_since_step`` of the deterministic stream."""
        state, config = self.state, self.config
        kind = self.batch_kind(stage_name)
        pool, sampler = self.pools.get(kind, (self.train, self.sampler))
        indices = sampler.indices(state.step - state.data_since_step)  # (batch_size,)
        chunk = [pool[i] for i in indices]
        # data: G = batch_size molecules, N atoms; target: energy (G,), forces (N, 3), hessian_flat (sum 9 n_i^2,)
        data, target = collate(chunk, self.dtype, self.device)
        features = self.features.gather(indices) if self.features is not None else None  # (N, D)
        pred = stage_forward(self.model, data, kind, training=True, features=features)
        weights = config.settings(kind).weights()
        loss, _ = weighted_loss(pred, target, [s.n_atoms for s in chunk], weights, data)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        state.step += 1
        self.steps_done += 1
        self.window_loss += float(loss.detach()) * len(chunk)
        self.window_n += len(chunk)

    def after_step(self, stage_name: str, log_every_s: float, validate_every: int | None, save_every_s: float) -> None:
        """The periodic chores after a step: progress log, validation, save."""
        state, now = self.state, time.time()
        if now - self.last_log >= log_every_s:
            rate = self.window_n / max(time.perf_counter() - self.window_t, 1e-9)
            self.say(
                f"step {state.step} ({stage_name}): loss {self.window_loss / self.window_n:.4f}, "
                f"lr {self.optimizer.param_groups[0]['lr']:.3g}, {rate:.1f} geometries/s"
            )
            self.last_log = now
        if validate_every and state.step % validate_every == 0:
            self.record(stage_name, self.window_loss / self.window_n)
            self.window_loss, self.window_n, self.window_t = 0.0, 0, time.perf_counter()
        if now - self.last_save >= save_every_s:
            self.snapshot()
            self.last_save = time.time()
            self.say(f"saved {self.state_path} at step {state.step}")

    def finish(self) -> None:
        """Final validation (unless nothing was trained on an existing state), unfreeze, save, log."""
        state = self.state
        if self.steps_done or not state.model:
            self.record(self.stage_name, self.window_loss / self.window_n if self.window_n else None)
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.snapshot()
        rate = self.steps_done * self.config.batch_size / max(time.time() - self.started, 1e-9)
        self.say(
            f"stopped at step {state.step} ({state.stage}) after {self.steps_done} steps "
            f"({rate:.1f} geometries/s); saved"
        )


def run(
    state_path: str | Path,
    train: Sequence[Sample],
    val: Sequence[Sample],
    config: CampaignConfig,
    data_hash: str,
    *,
    data_parts: Sequence[str] = (),
    deadline: float | None = None,
    max_steps: int | None = None,
    save_every_s: float = 300.0,
    validate_every: int | None = 1000,
    val_max: int = 256,
    log_every_s: float = 60.0,
    log: Callable[[str], None] | None = None,
    init_checkpoint: str | Path | None = None,
    device: str = "cpu",
    should_stop: Callable[[], bool] | None = None,
    ef_train: Sequence[Sample] = (),
    amend: bool = False,
) -> CampaignState:
    """Train from ``state_path`` (or from ``config.init`` if it does not exist) and save it back.

    Stops at ``deadline`` (a ``time.time()`` value), after ``max_steps`` steps of this call, or at the
    end of a finite schedule, whichever comes first; saves atomically every ``save_every_s`` seconds
    and at the end. Validation (on at most ``val_max`` evenly spaced ``val`` samples) runs every
    ``validate_every`` steps and at the end; it never changes the parameters or the batch order.
    ``should_stop`` (e.g. set by a SIGTERM handler) is polled between steps, so a stop request still
    ends on a complete step and a saved state. Raises :class:`StateMismatchError` when the state
    belongs to other data or another config. ``ef_train``: energy+force geometries (no Hessian) that join
    ``train`` in the ``energy_forces`` stage and, with ``config.ef_every``, in every ``ef_every``-th
    ``end_to_end`` step (their file hashes belong in ``data_parts`` with ``EF_PART``). ``amend``: accept a
    ``config`` that differs from the state's in :data:`AMENDABLE` fields only, and record the change.
    """
    if not train:
        raise CampaignError("the campaign needs a non-empty training set")
    if deadline is None and max_steps is None and config.total_steps is None:
        raise CampaignError("give a deadline or max_steps: the schedule is open-ended")
    state_path = Path(state_path)
    say = log or (lambda message: None)
    train, val = list(train), list(val)
    if state_path.is_file():
        state, model = _resume(state_path, train, config, data_hash, data_parts, say, amend)
    else:
        state, model = _start(state_path, train, config, data_hash, data_parts, init_checkpoint, say)
    state.meta["n_train"] = len(train)
    model.to(device)
    sampler = _Sampler(len(train), config.batch_size, config.seed, state.data_version)
    _warn_if_stream_changed(sampler, state)
    session = _Session(
        state, model, sampler, config, train, val, state_path=state_path, val_max=val_max, device=device, say=say
    )
    if ef_train:  # the backbone stage draws from every labelled geometry, the Hessian stages from the shards
        session.pools["energy_forces"] = (
            train + list(ef_train),
            _Sampler(len(train) + len(ef_train), config.batch_size, config.seed, state.data_version),
        )
        say(f"energy_forces stage: {len(train)} + {len(ef_train)} energy+force geometries")
    model.train()
    while not session.should_stop(max_steps, deadline, should_stop):
        k, first, _end = config.stage_at(state.step)
        if session.opt_stage != k:
            session.enter_stage(k, first)
        session.step(config.stages[k].name)
        session.after_step(config.stages[k].name, log_every_s, validate_every, save_every_s)
    session.finish()
    return state


def state_summary(state: CampaignState) -> dict:
    """Step, stage, last validation and file-level facts of a state, for logs and reports."""
    last_val = next((h["val"] for h in reversed(state.history) if h.get("val")), None)
    return {
        "step": state.step,
        "stage": state.stage,
        "data_hash": state.data_hash[:16],
        "config_hash": state.config_hash[:16],
        "data_version": state.data_version,
        "last_val": last_val,
    }
