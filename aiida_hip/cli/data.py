"""``aiida-hip data generate|pack|card|from-profile``: the xTB reaction dataset and the labels a batch stored
(training: :mod:`.training`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..common.level import label_level
from ..dataset.card import dataset_card
from ..dataset.generate import MOLECULES, generate
from ..queries import labels_from_profile
from .options import PROFILE_OPTION
from .profile import open_profile


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


@data.command("from-profile")
@PROFILE_OPTION
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Shard folder.")
@click.option("--group", default=None, help="Only the searches in this group.")
@click.option("--batch", type=int, default=None, help="Only the searches of this hip.reaction_batch (pk).")
@click.option("--level", type=click.Choice(["xtb", "dft"]), default=None, help="Only this level's labels.")
@click.option("--status", default=None, help="Only searches with this status (e.g. success); default: all.")
def from_profile_cmd(profile, out: Path, group, batch, level, status) -> None:
    """Reference Hessians that finished hip.ts_search runs stored -> hash-checked shards (train --init reads them).

    Each verified TS and each minimised end with a reference Hessian becomes one geometry; a reaction is held out
    (test split) by a hash of its name, so the split stays put as the folder grows."""
    from ..hip.data import DatasetError  # torch: the other data commands do without

    open_profile(profile)
    try:
        counts = labels_from_profile(out, group, batch, label_level(level) if level else None, status)
    except (ValueError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{counts['labels']} labels ({counts['level']}) from {counts['searches']} searches; "
        f"{counts['new_reactions']} new reaction(s) in {out} (split geometries: {counts['split_geometries']})"
    )
