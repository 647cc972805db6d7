"""Molecule and reaction checks on plain arrays (atomic numbers, Angstrom positions).

Every entry point runs these before any work is queued: the model, the reference level, the pipeline,
the worker and the AiiDA validators, so a bad input gets the same clear message everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .geometry import aligned_rmsd, min_distance

#: Closer than this (A) two atoms of a reaction input overlap: no chemistry, only a broken input file.
MIN_DISTANCE = 0.5
#: Reactant and product closer than this RMSD (A) after superposition are the same geometry.
SAME_GEOMETRY_RMSD = 0.05


class InvalidMoleculeError(ValueError):
    """A molecule that the model cannot or must not evaluate."""


def check_molecule(
    numbers: Sequence[int] | np.ndarray,
    positions: Sequence[Sequence[float]] | np.ndarray,
    elements: Sequence[int],
    min_distance: float = 0.1,
    name: str = "molecule",
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(numbers, positions)`` as (N,) int64 and (N, 3) float64 arrays, or raise.

    Rejects shape mismatches, non-finite coordinates, elements outside ``elements`` and atoms closer
    than ``min_distance`` Angstrom.
    """
    try:
        z = np.asarray(numbers)
        pos = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidMoleculeError(f"{name}: numbers/positions are not numeric arrays ({exc})") from exc
    if z.ndim != 1 or z.size == 0:
        raise InvalidMoleculeError(f"{name}: numbers must be a non-empty 1-D sequence, got shape {z.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        if not np.all(np.equal(np.mod(z, 1), 0)):
            raise InvalidMoleculeError(f"{name}: atomic numbers must be integers, got {z.tolist()}")
        z = z.astype(np.int64)
    if pos.shape != (z.size, 3):
        raise InvalidMoleculeError(
            f"{name}: positions must have shape ({z.size}, 3) for {z.size} atoms, got {pos.shape}"
        )
    if not np.all(np.isfinite(pos)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(pos))[:, 0]})
        raise InvalidMoleculeError(f"{name}: non-finite (NaN/inf) coordinates for atoms {bad}")
    unsupported = sorted(set(z.tolist()) - set(int(e) for e in elements))
    if unsupported:
        raise InvalidMoleculeError(
            f"{name}: unsupported element(s) with atomic number {unsupported}; "
            f"this model knows {sorted(int(e) for e in elements)}"
        )
    if z.size > 1:
        diff = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((diff**2).sum(-1))
        np.fill_diagonal(dist, np.inf)
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] < min_distance:
            raise InvalidMoleculeError(
                f"{name}: atoms {min(i, j)} and {max(i, j)} are {dist[i, j]:.3f} A apart "
                f"(< {min_distance} A); the geometry is unphysical"
            )
    return z.astype(np.int64), pos


class ReactionInputError(ValueError):
    """The reactant/product pair cannot be a reaction input; the message says why."""


def check_structure(numbers: Sequence[int], positions: np.ndarray, role: str = "structure") -> None:
    """A usable reaction end: finite coordinates, at least two atoms, none overlapping."""
    positions = np.asarray(positions, dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise ReactionInputError(f"{role} has non-finite coordinates")
    if len(numbers) < 2:
        raise ReactionInputError(f"{role} needs at least two atoms, got {len(numbers)}")
    d = min_distance(positions)
    if d < MIN_DISTANCE:
        raise ReactionInputError(f"{role} has overlapping atoms ({d:.3f} A apart, below {MIN_DISTANCE} A)")


def check_reaction(
    reactant: tuple[Sequence[int], np.ndarray], product: tuple[Sequence[int], np.ndarray], symbols=None
) -> None:
    """Same atoms in the same order, both sane, and not the same geometry. Each end is ``(numbers, positions)``."""
    (zr, xr), (zp, xp) = reactant, product
    check_structure(zr, xr, "reactant")
    check_structure(zp, xp, "product")
    if len(zr) != len(zp):
        raise ReactionInputError(f"reactant has {len(zr)} atoms but product has {len(zp)}")
    zr, zp = np.asarray(zr).tolist(), np.asarray(zp).tolist()
    if zr != zp:
        first = next(i for i, (a, b) in enumerate(zip(zr, zp, strict=True)) if a != b)
        name = symbols or (lambda z: f"Z={z}")
        raise ReactionInputError(
            "reactant and product must list the same elements in the same atom order "
            f"(atom {first}: {name(zr[first])} vs {name(zp[first])})"
        )
    if aligned_rmsd(xp, xr) < SAME_GEOMETRY_RMSD:
        raise ReactionInputError("reactant and product are the same geometry: there is no reaction to search")


def check_elements(numbers: Sequence[int], supported: Sequence[int], role: str = "structure") -> None:
    """Every element of a molecule is one the HIP model knows."""
    known = sorted(int(z) for z in supported)
    missing = sorted(set(np.asarray(numbers).tolist()) - set(known))
    if missing:
        raise ReactionInputError(f"{role}: elements {missing} are not supported by the HIP model (it knows {known})")
