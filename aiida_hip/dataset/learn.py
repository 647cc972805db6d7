"""``aiida-hip train --init``: fine-tune any checkpoint on shard folders, evaluated before and after.

The checkpoint it writes says what it learnt from (data hashes, the parent's SHA-256, the level of theory)
and how it did on the folders' held-out reactions (their ``test`` split), so a caller can adopt it only
when it is no worse. A level of theory other than the parent's is refused unless asked for: an xTB model
that silently absorbs DFT Hessians would carry two surfaces in one set of weights.
"""

from __future__ import annotations

from pathlib import Path

from ..common.level import DEFAULT_LABEL_LEVEL
from ..hip.checkpoints import load_model, save_checkpoint, sha256
from ..hip.data import DatasetError
from ..hip.finetune import FinetuneSettings, check_samples, finetune, hessian_mae
from .harvest import folder_level
from .shards import data_hash, load_shards, verify


def checkpoint_level(metadata: dict | None) -> str:
    """The level of theory a checkpoint was trained at (the shipped and campaign models: GFN2-xTB)."""
    return (metadata or {}).get("level") or DEFAULT_LABEL_LEVEL


def data_level(folders: list[Path]) -> str:
    """The one level of theory of ``folders``; several levels at once are refused."""
    levels = {str(folder): folder_level(folder) for folder in folders}
    if len(set(levels.values())) > 1:
        raise DatasetError(f"shard folders of different levels of theory: {levels}")
    return next(iter(levels.values()))


def finetune_checkpoint(
    checkpoint: Path | None,
    folders: list[Path],
    out: Path,
    settings: FinetuneSettings | None = None,
    new_level: bool = False,
    lineage: dict | None = None,
) -> dict:
    """Fine-tune ``checkpoint`` (None: the shipped one) on the ``train`` split of ``folders``; write ``out``.

    Returns the report: held-out Hessian MAE before and after (``None`` without held-out reactions),
    ``no_worse``, the level, the parent's SHA-256 and the data hashes. ``lineage`` (plain JSON: the
    source nodes, the batch) goes into the checkpoint's metadata as it is."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise DatasetError("no shard folder given")
    level = data_level(folders)
    parent = load_model(checkpoint)
    parent_level = checkpoint_level(parent.checkpoint_metadata)
    if level != parent_level and not new_level:
        raise DatasetError(
            f"the checkpoint was trained at {parent_level}, the data is {level}: pass new_level "
            "(aiida-hip train --new-level) to fine-tune across levels of theory"
        )
    train = [s for f in folders for s in load_shards(f, "train")]
    held = [s for f in folders for s in load_shards(f, "test")]
    if not train:
        raise DatasetError(f"no training geometries in {[str(f) for f in folders]}: the selection is empty")
    check_samples(parent, train + held)
    settings = settings or FinetuneSettings()
    before = hessian_mae(parent, held) if held else None
    model, report = finetune(parent, train, settings)
    after = hessian_mae(model, held) if held else None
    parent_path = Path(parent.checkpoint_path)
    report |= {
        "level": level,
        "parent": parent_path.name,
        "parent_sha256": sha256(parent_path),
        "parent_level": parent_level,
        "data": [{"folder": str(f), "sha256": data_hash(verify(f))} for f in folders],
        "held_out": {
            "n_geometries": len(held),
            "n_reactions": len({s.reaction for s in held}),
            "hessian_mae_before": before,
            "hessian_mae_after": after,
        },
        "no_worse": before is None or after <= before,
    }
    history = list((parent.checkpoint_metadata or {}).get("lineage_chain", []))
    metadata = {
        "level": level,
        "stage": f"finetune_{settings.mode}",
        "finetune": report,
        "lineage": lineage or {},
        "lineage_chain": [*history, {"sha256": report["parent_sha256"], "name": report["parent"]}],
        "test_metrics": {"hessian_mae": after} if after is not None else {},
    }
    save_checkpoint(model, out, metadata)
    load_model(out)  # the file loads as the searches will load it (strict state dict), or this fails here
    report["sha256"] = sha256(out)
    return report
