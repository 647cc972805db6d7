"""Reactant/product input: read with ASE, check that they describe one reaction, fail with a clear message."""

from __future__ import annotations

import re
from pathlib import Path

from ase import Atoms
from ase.data import chemical_symbols
from ase.io import read

from ..common import molecule
from ..common.molecule import MIN_DISTANCE, ReactionInputError

__all__ = ["MIN_DISTANCE", "ReactionInputError", "check_elements", "check_reaction", "read_batch", "read_reaction"]


def read_structure(path: str | Path, role: str = "structure", allow_periodic: bool = True) -> Atoms:
    """One geometry from any ASE-readable file (the last frame of a trajectory).

    A periodic cell is dropped (molecules only), or refused with ``allow_periodic=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise ReactionInputError(f"{role} file {str(path)!r} does not exist")
    try:
        atoms = read(path, index=-1)
    except Exception as exc:
        raise ReactionInputError(f"cannot read {role} file {str(path)!r}: {exc}") from exc
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ReactionInputError(f"{role} file {str(path)!r} holds no atoms")
    if not allow_periodic and atoms.pbc.any():
        raise ReactionInputError(f"{role} file {str(path)!r} is periodic (pbc={atoms.pbc.tolist()}): give molecules")
    atoms.pbc = False
    atoms.cell = None
    return atoms


def check_structure(atoms: Atoms, role: str = "structure") -> None:
    molecule.check_structure(atoms.numbers, atoms.positions, role)


def check_reaction(reactant: Atoms, product: Atoms) -> None:
    """Same atoms in the same order, both sane, and not the same geometry (:mod:`aiida_hip.common.molecule`)."""
    molecule.check_reaction(
        (reactant.numbers, reactant.positions), (product.numbers, product.positions), symbols=_symbol
    )


def check_elements(atoms: Atoms, evaluator, role: str = "structure") -> None:
    """Every element of ``atoms`` is one the level's HIP model knows (nothing to check without a model)."""
    if evaluator.level.uses_model:
        molecule.check_elements(atoms.numbers, evaluator.model_elements(), role)


def _symbol(z: int) -> str:
    return chemical_symbols[int(z)]


def read_reaction(reactant_path: str | Path, product_path: str | Path) -> tuple[Atoms, Atoms]:
    reactant = read_structure(reactant_path, "reactant")
    product = read_structure(product_path, "product")
    check_reaction(reactant, product)
    return reactant, product


#: reactant/product file names inside one reaction folder of a batch
PAIR_NAMES = ("reactant", "product")


def read_batch(source: str | Path) -> tuple[dict[str, tuple[Atoms, Atoms]], dict[str, str]]:
    """Reactions from a folder of reaction folders (each with ``reactant.*`` and ``product.*``) or from
    one multi-frame file (frames in pairs: reactant, product, ...; names from a ``name`` key if any).

    Returns the good reactions by name and, separately, what was wrong with each bad one, so that one
    malformed file does not stop the others.
    """
    source = Path(source)
    good: dict[str, tuple[Atoms, Atoms]] = {}
    bad: dict[str, str] = {}
    if source.is_dir():
        folders = sorted(d for d in source.iterdir() if d.is_dir())
        if not folders and any(source.glob("reactant.*")):
            folders = [source]
        for folder in folders:
            name = _reaction_name(folder.name)
            try:
                files = {}
                for role in PAIR_NAMES:
                    matches = sorted(folder.glob(f"{role}.*"))
                    if len(matches) != 1:
                        raise ReactionInputError(f"expected one {role}.* file in {folder}, found {len(matches)}")
                    files[role] = read_structure(matches[0], role, allow_periodic=False)
                check_reaction(files["reactant"], files["product"])
            except ReactionInputError as exc:
                bad[name] = str(exc)
                continue
            good[name] = (files["reactant"], files["product"])
        return good, bad
    if not source.is_file():
        raise ReactionInputError(f"{str(source)!r} is neither a folder of reactions nor a file")
    try:
        frames = read(source, index=":")
    except Exception as exc:
        raise ReactionInputError(f"cannot read {str(source)!r}: {exc}") from exc
    if len(frames) % 2:
        raise ReactionInputError(f"{str(source)!r} has {len(frames)} frames: reactions need them in pairs")
    for i in range(0, len(frames), 2):
        reactant, product = frames[i], frames[i + 1]
        name = _reaction_name(str(reactant.info.get("name", f"reaction_{i // 2:03d}")))
        try:
            for role, atoms in (("reactant", reactant), ("product", product)):
                if atoms.pbc.any():
                    raise ReactionInputError(f"{role} of {name} is periodic: give molecules")
                atoms.pbc, atoms.cell = False, None
            check_reaction(reactant, product)
        except ReactionInputError as exc:
            bad[name] = str(exc)
            continue
        good[name] = (reactant, product)
    return good, bad


def _reaction_name(text: str) -> str:
    """A name that can also be an AiiDA link label: letters, digits and underscores."""
    name = re.sub(r"\W+", "_", text).strip("_") or "reaction"
    return name if not name[0].isdigit() else f"r_{name}"
