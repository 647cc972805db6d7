"""``aiida-hip train`` and ``aiida-hip evaluate``: the HIP model (torch) on the dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
import torch

from ..dataset import evaluate as evaluation
from ..dataset.learn import finetune_checkpoint
from ..dataset.shards import load_shards
from ..hip import CheckpointError, HIPConfig, HIPModel, load_model
from ..hip.checkpoints import DEFAULT_CHECKPOINT, PREVIOUS_NAME
from ..hip.data import DatasetError, load_samples
from ..hip.finetune import FinetuneError, FinetuneSettings
from ..hip.train import TrainSettings, average_neighbours
from ..hip.train import train as run


def _split(data_path: Path, split: str):
    """The geometries of ``split`` from an HDF5 file or a hash-checked shard folder."""
    if data_path.is_dir():
        return load_shards(data_path, split)
    return load_samples(data_path, split)


@click.command()
@click.option(
    "--data",
    "data_paths",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    multiple=True,
    help="An HDF5 dataset, or a hash-checked shard folder (data/campaign/shards, or `aiida-hip data from-profile`'s); "
    "with --init, one or more shard folders.",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--init",
    "init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Fine-tune this checkpoint instead of training a new model: writes WORKDIR/finetuned.pt and finetune.json.",
)
@click.option(
    "--mode",
    type=click.Choice(["head", "end_to_end"]),
    default="head",
    show_default=True,
    help="--init: the Hessian head on cached backbone features (CPU-minutes), or everything.",
)
@click.option("--new-level", is_flag=True, help="--init: accept labels of another level of theory than the model's.")
@click.option(
    "--stage",
    type=click.Choice(["energy_forces", "hessian", "end_to_end", "hessian_first", "all"]),
    default="all",
    show_default=True,
    help="all: energy_forces then hessian; hessian_first: everything on the Hessian loss, one backward pass.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default 2e-3; --init: 3e-3).")
@click.option("--patience", type=int, default=8, show_default=True)
@click.option("--max-minutes", type=float, default=None, help="Stop a stage after this much wall time.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--channels", type=int, default=None, help="Model width (default: HIPConfig's).")
@click.option(
    "--sum-rule/--no-sum-rule",
    default=False,
    show_default=True,
    help="A new model's head builds exactly translation-invariant Hessians (diagonal blocks by the sum rule).",
)
def train(
    data_paths,
    workdir,
    init,
    mode,
    new_level,
    stage,
    epochs,
    batch_size,
    lr,
    patience,
    max_minutes,
    device,
    channels,
    sum_rule,
) -> None:
    """Train HIP: energy + forces, then the Hessian head on the frozen backbone (resumable); or, with --init,
    fine-tune a checkpoint on shard folders and report the held-out Hessian MAE before and after."""
    if init is not None:
        _finetune(init, list(data_paths), workdir, mode, new_level, epochs, max_minutes, lr)
        return
    if len(data_paths) > 1:
        raise click.ClickException("training a new model takes one --data (several only with --init)")
    data_path = data_paths[0]
    try:
        train_set, val_set = _split(data_path, "train"), _split(data_path, "val")
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(train_set)} training and {len(val_set)} validation geometries")
    stages = ["energy_forces", "hessian"] if stage == "all" else [stage]
    resumable = [workdir / f"{name}_last.pt" for name in stages if (workdir / f"{name}_last.pt").is_file()]
    if resumable:  # continue with the architecture already being trained
        saved = torch.load(resumable[0], map_location="cpu", weights_only=True)["config"]
        config = HIPConfig.from_dict(saved)
    else:
        config = HIPConfig() if channels is None else HIPConfig(channels=channels)
        config = replace(
            config,
            hessian_sum_rule=sum_rule,
            avg_num_neighbors=round(average_neighbours(train_set, config.cutoff), 2),
        )
    model = HIPModel(config)
    for name in stages:
        previous = {"hessian": "energy_forces", "end_to_end": "hessian"}.get(name)
        if previous and (workdir / f"{previous}_best.pt").is_file() and not (workdir / f"{name}_last.pt").is_file():
            model = load_model(workdir / f"{previous}_best.pt", device=device)
        try:
            settings = TrainSettings(
                stage=name,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr or 2e-3,
                patience=patience,
                max_minutes=max_minutes,
                device=device,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        state = run(model, train_set, val_set, settings, workdir)
        click.echo(f"{name}: {state['epoch']} epochs, best validation loss {state['best']:.4f}")
        model = load_model(workdir / f"{name}_best.pt", device=device)


def _finetune(init: Path, folders: list[Path], workdir: Path, mode: str, new_level: bool, epochs, max_minutes, lr):
    """``train --init``: the fine-tune path (:func:`aiida_hip.dataset.learn.finetune_checkpoint`)."""
    try:
        settings = FinetuneSettings(mode=mode, epochs=epochs, max_minutes=max_minutes or 5.0, lr=lr or 3e-3)
        for folder in folders:
            if not folder.is_dir():
                raise DatasetError(f"--init fine-tunes on shard folders; {folder} is a file")
        report = finetune_checkpoint(init, folders, workdir / "finetuned.pt", settings, new_level=new_level)
    except (CheckpointError, DatasetError, FinetuneError) as exc:
        raise click.ClickException(str(exc)) from exc
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "finetune.json").write_text(json.dumps(report, indent=1) + "\n")
    held = report["held_out"]
    click.echo(
        f"fine-tuned {init.name} ({mode}) on {report['n_geometries']} geometries of {report['n_reactions']} reactions "
        f"in {report['seconds']:.0f} s: held-out Hessian MAE {held['hessian_mae_before']} -> "
        f"{held['hessian_mae_after']} ({held['n_reactions']} reactions){'' if report['no_worse'] else ', WORSE'}; "
        f"{workdir / 'finetuned.pt'}"
    )


def _baseline(checkpoint: Path | None, baseline: str | None) -> Path | None:
    """``--baseline``: a file, ``none``, or by default the previous shipped checkpoint when the shipped one is
    evaluated, else the shipped one."""
    if baseline == "none":
        return None
    if baseline is not None:
        return Path(baseline)
    if checkpoint is None or Path(checkpoint).resolve() == DEFAULT_CHECKPOINT.resolve():
        previous = DEFAULT_CHECKPOINT.with_name(PREVIOUS_NAME)
        return previous if previous.is_file() else None
    return DEFAULT_CHECKPOINT


def _load(path: Path | None):
    try:
        return load_model(path)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, path_type=Path),
    default=Path("data/campaign/shards"),
    show_default=True,
    help="An HDF5 dataset or the committed, hash-checked shard folder.",
)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option(
    "--baseline",
    default=None,
    help="Checkpoint to compare with on the same geometries, or 'none'. Default: the previous shipped checkpoint "
    "(weights/hip_previous.pt) when the shipped one is evaluated, else the shipped one.",
)
@click.option("--split", default="test", show_default=True)
@click.option("--max-samples", type=int, default=300, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("benchmarks/results/hip_evaluation"),
    show_default=True,
)
def evaluate(data_path, checkpoint, baseline, split, max_samples, output) -> None:
    """Model quality against a baseline checkpoint, and the seed's Table 1, on the same held-out geometries.

    One run: force MAE, Hessian MAE, CosSim(v1) at TSs and imaginary-mode counts at TSs and minima for the
    checkpoint (default: the shipped one) and the baseline, then HIP vs the autograd Hessian (JSON +
    markdown)."""
    other = _baseline(checkpoint, baseline)
    models = {f"{(checkpoint or DEFAULT_CHECKPOINT).name} (evaluated)": _load(checkpoint)}
    if other is not None:
        if not other.is_file():
            raise click.ClickException(f"baseline checkpoint not found: {other}")
        models[f"{other.name} (baseline)"] = _load(other)
    try:
        samples = _split(data_path, split)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    if not samples:
        raise click.ClickException(f"no geometries in split {split!r} of {data_path}")
    samples = evaluation.evaluation_subset(samples, max_samples)
    metrics = {name: evaluation.model_metrics(model, samples) for name, model in models.items()}
    result = evaluation.evaluate(next(iter(models.values())), samples)
    result["comparison"] = metrics
    title = f"HIP vs autograd Hessian on the {split} split ({checkpoint or 'shipped checkpoint'})"
    evaluation.write(result, output, title)
    table = evaluation.comparison_markdown(metrics)
    output.with_suffix(".md").write_text(
        f"### Model quality on {len(samples)} held-out geometries ({split} split of {data_path})\n\n"
        + table
        + "\n"
        + evaluation.markdown(result, title)
    )
    click.echo(table + "\n" + evaluation.markdown(result, title))
