"""Save and load checkpoints (config + weights + metadata); always ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..common.files import SHIPPED_CHECKPOINT, sha256_of
from .config import HIPConfig
from .model import HIPModel, build_model

DEFAULT_CHECKPOINT = SHIPPED_CHECKPOINT
WEIGHTS_DIR = DEFAULT_CHECKPOINT.parent
#: the checkpoint the last promotion replaced, kept so that ``aiida-hip evaluate`` compares against it
PREVIOUS_NAME = "hip_previous.pt"


#: State-dict prefixes of checkpoints written before the Hessian head was split into a pair block and a
#: diagonal block (``hip_default.pt`` among them), and where those parameters and buffers live now.
LEGACY_KEY_PREFIXES = {
    **{
        f"hessian_head.{name}.": f"hessian_head.pair.{name}."
        for name in ("tp_nodes", "tp_edge", "pair_basis", "pair_radial", "pair_mix", "pair_mix_edge", "pair_out")
    },
    **{f"hessian_head.{name}.": f"hessian_head.diagonal.{name}." for name in ("tp_self", "diag_mix")},
}


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or not a HIP checkpoint."""


def upgrade_state_dict(state: dict) -> dict:
    """Rename legacy keys (see ``LEGACY_KEY_PREFIXES``) to the current layout; other keys pass unchanged."""
    upgraded = {}
    for key, value in state.items():
        old = next((prefix for prefix in LEGACY_KEY_PREFIXES if key.startswith(prefix)), None)
        new = key if old is None else LEGACY_KEY_PREFIXES[old] + key[len(old) :]
        if new in upgraded:
            raise CheckpointError(f"state dict has both the legacy and the current key for {new}")
        upgraded[new] = value
    return upgraded


def sha256(path: str | Path) -> str:
    """SHA-256 of a file: what provenance records to say exactly which model made a Hessian."""
    return sha256_of(path)


def save_checkpoint(model: HIPModel, path: str | Path, metadata: dict | None = None) -> Path:
    """Write config, state dict and JSON-able metadata (plain types only, so weights_only loading works)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"format": "aiida-hip/1", "config": model.config.to_dict(), "state_dict": state, "metadata": metadata or {}},
        path,
    )
    return path


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != "aiida-hip/1":
        raise CheckpointError(f"{path} is not an aiida-hip checkpoint (no 'format': 'aiida-hip/1')")
    return payload


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> HIPModel:
    """Load a HIP model in eval mode. ``path=None`` loads the checkpoint shipped with the package.

    ``dtype=torch.float64`` suits geometry optimisations: forces and finite differences without float32 noise.
    """
    if path is None:
        if not DEFAULT_CHECKPOINT.is_file():
            raise CheckpointError(
                "the shipped HIP checkpoint is missing from this installation "
                f"(expected {DEFAULT_CHECKPOINT}); pass path= to a checkpoint written by "
                "save_checkpoint, or build an untrained model with HIPModel(HIPConfig())"
            )
        path = DEFAULT_CHECKPOINT
    payload = read_checkpoint(path)
    model = build_model(HIPConfig.from_dict(payload["config"]), dtype=dtype)
    model.load_state_dict(upgrade_state_dict(payload["state_dict"]))
    model.checkpoint_path = str(path)
    model.checkpoint_metadata = payload.get("metadata", {})
    return model.to(device).eval()


def convert_model(model: HIPModel, **changes) -> HIPModel:
    """A model with config fields ``changes`` that keeps every parameter of ``model`` it shares.

    The parameters it no longer has may only be the diagonal readout (``hessian_sum_rule=True`` builds the
    diagonal blocks from the pair blocks), so a sum-rule model can fine-tune a trained one instead of
    starting from random weights.
    """
    config = HIPConfig.from_dict({**model.config.to_dict(), **changes})
    new = build_model(config, dtype=model.dtype)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    dropped = [k for k in unexpected if not k.startswith("hessian_head.diagonal.")]
    if missing or dropped:
        raise CheckpointError(f"cannot change {changes}: parameters missing {missing}, left over {dropped}")
    return new.to(model.device).train(model.training)


def convert_checkpoint(path: str | Path | None, out: str | Path, **changes) -> Path:
    """Write ``out``: the checkpoint at ``path`` (None: the shipped one) as :func:`convert_model` changes it."""
    source = Path(path or DEFAULT_CHECKPOINT)
    model = convert_model(load_model(source), **changes)
    metadata = {"converted_from": str(source), "converted_from_sha256": sha256(source), "changes": changes}
    return save_checkpoint(model, out, metadata)
