"""Reactant/product input: read with ASE, check that they describe one reaction, fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from ..chem.geometry import aligned_rmsd, min_distance

#: Closer than this (A) two atoms overlap: no chemistry, only a broken input file.
MIN_DISTANCE = 0.5


class ReactionInputError(ValueError):
    """The reactant/product pair cannot be a reaction input; the message says why."""


def read_structure(path: str | Path, role: str = "structure") -> Atoms:
    """One geometry from any ASE-readable file (the last frame of a trajectory)."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise ReactionInputError(f"{role} file {str(path)!r} does not exist")
    try:
        atoms = read(path, index=-1)
    except Exception as exc:
        raise ReactionInputError(f"cannot read {role} file {str(path)!r}: {exc}") from exc
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ReactionInputError(f"{role} file {str(path)!r} holds no atoms")
    atoms.pbc = False
    atoms.cell = None
    return atoms


def check_structure(atoms: Atoms, role: str = "structure") -> None:
    if not np.all(np.isfinite(atoms.positions)):
        raise ReactionInputError(f"{role} has non-finite coordinates")
    if len(atoms) < 2:
        raise ReactionInputError(f"{role} needs at least two atoms, got {len(atoms)}")
    d = min_distance(atoms.positions)
    if d < MIN_DISTANCE:
        raise ReactionInputError(f"{role} has overlapping atoms ({d:.3f} A apart, below {MIN_DISTANCE} A)")


def check_reaction(reactant: Atoms, product: Atoms) -> None:
    """Same atoms in the same order, both sane, and not the same geometry."""
    check_structure(reactant, "reactant")
    check_structure(product, "product")
    if len(reactant) != len(product):
        raise ReactionInputError(f"reactant has {len(reactant)} atoms but product has {len(product)}")
    if reactant.get_chemical_symbols() != product.get_chemical_symbols():
        first = next(i for i, (a, b) in enumerate(zip(reactant.numbers, product.numbers, strict=True)) if a != b)
        raise ReactionInputError(
            "reactant and product must list the same elements in the same atom order "
            f"(atom {first}: {reactant[first].symbol} vs {product[first].symbol})"
        )
    if aligned_rmsd(product.positions, reactant.positions) < 0.05:
        raise ReactionInputError("reactant and product are the same geometry: there is no reaction to search")


def read_reaction(reactant_path: str | Path, product_path: str | Path) -> tuple[Atoms, Atoms]:
    reactant = read_structure(reactant_path, "reactant")
    product = read_structure(product_path, "product")
    check_reaction(reactant, product)
    return reactant, product
