"""Validation of user input: bad molecules fail here with a clear message, not deep inside e3nn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
