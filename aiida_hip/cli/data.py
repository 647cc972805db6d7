"""``aiida-hip data generate|pack|card``: the xTB reaction dataset (training: :mod:`.training`)."""

from __future__ import annotations

from pathlib import Path

import click

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
    from ..hip.data import DatasetError, pack_dataset  # torch: `data generate` and `data card` do without

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
