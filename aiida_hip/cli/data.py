"""``aiida-hip data``, ``aiida-hip train`` and ``aiida-hip evaluate``.

The model (:mod:`aiida_hip.hip`, torch) is imported inside the commands: ``aiida-hip --help`` must not
pay for it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..dataset import evaluate as evaluation
from ..dataset.card import dataset_card
from ..dataset.generate import MOLECULES, generate


@click.group()
def data() -> None:
    """Generate and inspect the xTB reaction dataset."""


@data.command("generate")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("data/hip_xtb.h5"),
    show_default=True,
    help="HDF5 file; an existing one is continued, never overwritten.",
)
@click.option("--workers", "-j", type=int, default=1, show_default=True, help="Parallel worker processes.")
@click.option("--limit", type=int, default=None, help="Process at most this many new reactions.")
@click.option(
    "--smiles-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="SMILES list (default: the one shipped with the package).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    default=None,
    help="Only reactions of this split (e.g. the held-out test reactions for the benchmarks).",
)
def generate_cmd(output: Path, workers: int, limit: int | None, smiles_file: Path | None, split: str | None) -> None:
    """Enumerate reactions, trace xTB NEB paths, sample and label geometries (resumable)."""
    counts = generate(output, workers=workers, limit=limit, smiles_file=smiles_file or MOLECULES, split=split)
    click.echo(counts)


@data.command("pack")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hessian-dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True)
def pack_cmd(source: Path, target: Path, hessian_dtype: str) -> None:
    """Write a compact copy of SOURCE for a training machine (upper-triangle Hessians)."""
    from ..hip.data import DatasetError, pack_dataset

    try:
        counts = pack_dataset(source, target, hessian_dtype)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    size = target.stat().st_size / 2**20
    click.echo(f"{counts['reactions']} reactions, {counts['geometries']} geometries -> {target} ({size:.1f} MiB)")


@data.command("card")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def card_cmd(path: Path) -> None:
    """Print counts, elements and sizes of a dataset (markdown)."""
    click.echo(dataset_card(path))


def _split(data_path: Path, split: str):
    """The geometries of ``split`` from an HDF5 file or a hash-checked shard folder."""
    from ..dataset.shards import load_shards  # torch (through the model's data module): not for --help
    from ..hip.data import load_samples

    if data_path.is_dir():
        return load_shards(data_path, split)
    return load_samples(data_path, split)


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="An HDF5 dataset, or the committed shard folder (data/campaign/shards: hashes checked first).",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--stage", type=click.Choice(["energy_forces", "hessian", "end_to_end", "all"]), default="all", show_default=True
)
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--patience", type=int, default=8, show_default=True)
@click.option("--max-minutes", type=float, default=None, help="Stop a stage after this much wall time.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--channels", type=int, default=None, help="Model width (default: HIPConfig's).")
def train(data_path, workdir, stage, epochs, batch_size, lr, patience, max_minutes, device, channels) -> None:
    """Train HIP: energy + forces, then the Hessian head on the frozen backbone (resumable)."""
    import torch

    from ..hip import HIPConfig, HIPModel, load_model
    from ..hip.data import DatasetError
    from ..hip.train import TrainSettings, average_neighbours
    from ..hip.train import train as run

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
        config = replace(config, avg_num_neighbors=round(average_neighbours(train_set, config.cutoff), 2))
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
                lr=lr,
                patience=patience,
                max_minutes=max_minutes,
                device=device,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        state = run(model, train_set, val_set, settings, workdir)
        click.echo(f"{name}: {state['epoch']} epochs, best validation loss {state['best']:.4f}")
        model = load_model(workdir / f"{name}_best.pt", device=device)


@click.command()
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option(
    "--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None, help="Default: the shipped checkpoint."
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
def evaluate(data_path, checkpoint, split, max_samples, output) -> None:
    """Seed Table 1 metrics of HIP and the autograd Hessian on held-out reactions (JSON + markdown)."""
    from ..hip import CheckpointError, load_model
    from ..hip.data import DatasetError, load_samples

    try:
        model = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        samples = load_samples(data_path, split)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    if not samples:
        raise click.ClickException(f"no geometries in split {split!r} of {data_path}")
    result = evaluation.evaluate(model, samples, max_samples=max_samples)
    title = f"HIP vs autograd Hessian on the {split} split ({checkpoint or 'shipped checkpoint'})"
    evaluation.write(result, output, title)
    click.echo(evaluation.markdown(result, title))
