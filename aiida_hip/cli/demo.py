"""``aiida-hip demo``: predict a Hessian with HIP, compare with autograd and GFN2-xTB, print frequencies."""

from __future__ import annotations

import time

import click
import numpy as np
import torch
from ase import Atoms
from ase.optimize import BFGS
from rdkit import Chem
from rdkit.Chem import AllChem
from tblite.ase import TBLite

from ..chem.reference import XTBReference
from ..chem.vibrations import analyse
from ..hip import CheckpointError, HIPModel, InvalidMoleculeError, load_model


def _embed(smiles: str) -> tuple[np.ndarray, np.ndarray]:
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise click.BadParameter(f"RDKit cannot parse SMILES {smiles!r}", param_hint="--smiles")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = 7
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise click.BadParameter(f"RDKit could not embed {smiles!r} in 3D", param_hint="--smiles")
    return np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions()


def _relax_xtb(numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=500)
    return atoms.positions.copy()


@click.command()
@click.option("--smiles", default="CCO", show_default=True, help="Molecule to analyse (CHNO).")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="HIP checkpoint; default: the one shipped with the package, else an untrained model.",
)
def demo(smiles: str, checkpoint: str | None) -> None:
    """Relax a molecule with GFN2-xTB, then compare HIP, autograd and xTB Hessians and frequencies."""
    try:
        model = load_model(checkpoint)
        label = f"checkpoint {getattr(model, 'checkpoint_path', checkpoint)}"
    except CheckpointError as exc:
        if checkpoint:
            raise click.ClickException(str(exc)) from exc
        torch.manual_seed(0)
        model = HIPModel().eval()
        label = "UNTRAINED random-init model (the shipped checkpoint is missing here): its frequencies are not physical"
    numbers, positions = _embed(smiles)
    click.echo(f"{smiles}: {len(numbers)} atoms; model: {label} ({model.num_parameters()} parameters)")
    positions = _relax_xtb(numbers, positions)

    timings, results = {}, {}
    try:
        for mode in ("predicted", "autograd"):
            model.predict(numbers, positions, hessian=mode)  # warm-up
            t0 = time.perf_counter()
            results[mode] = model.predict(numbers, positions, hessian=mode)
            timings[mode] = time.perf_counter() - t0
    except InvalidMoleculeError as exc:
        raise click.ClickException(str(exc)) from exc
    t0 = time.perf_counter()
    results["xtb"] = XTBReference().predict(numbers, positions)
    timings["xtb"] = time.perf_counter() - t0

    click.echo(f"\n{'Hessian':<22}{'time [s]':>10}{'ZPE [eV]':>10}{'imag':>6}  lowest frequencies [cm^-1]")
    names = {"predicted": "HIP (direct)", "autograd": "autograd (same model)", "xtb": "GFN2-xTB (FD)"}
    for key, name in names.items():
        va = analyse(numbers, positions, results[key]["hessian"])
        low = " ".join(f"{f:7.1f}" for f in va.frequencies[:5])
        click.echo(f"{name:<22}{timings[key]:>10.4f}{va.zpe:>10.4f}{va.n_imaginary:>6}  {low}")
    mae = np.abs(results["predicted"]["hessian"] - results["xtb"]["hessian"]).mean()
    click.echo(
        f"\nHIP vs autograd speed-up: {timings['autograd'] / timings['predicted']:.1f}x; "
        f"HIP Hessian MAE vs xTB: {mae:.3f} eV/A^2"
    )
