"""One conditioning step between an approximate Hessian and any optimiser.

A learned (or model finite-difference) Hessian is a preconditioner, not an oracle: its soft modes
carry spurious negative eigenvalues and an occasional runaway stiff one. Before RS-P-RFO, Sella, RFO
minimisation or an IRC start sees it, the Hessian is

1. projected free of rigid-body motion (translations and rotations);
2. repaired in its spectrum, eigenvectors unchanged:
   - minimum: every vibrational eigenvalue ``|lambda|``, at least ``floor``;
   - TS: exactly one negative eigenvalue, by default on the lowest mode (the one a TS optimiser
     follows); every other one ``|lambda|``, at least ``floor``. With no negative eigenvalue the
     lowest mode is made negative (``-max(|lambda|, floor)``);
3. capped: no ``|lambda|`` above ``cap``.

An exact Hessian at a geometry of the right character passes unchanged (up to the rigid-body
projection): a test checks it. Every call returns what it changed, and stages keep those records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..common.geometry import rigid_body_vectors

#: smallest curvature a repaired mode gets (eV/A^2): softer than any bond, stiffer than numerical noise
FLOOR = 0.05
#: largest curvature any mode keeps (eV/A^2): Cartesian eigenvalues of triple-bond stretches reach ~250
#: at GFN2-xTB (N2 240, CO2 252); twice that is no bond, only a prediction that ran away
CAP = 500.0


@dataclass(frozen=True)
class ConditioningSettings:
    """``mode``: ``off`` (the Hessian as it is), ``lowest`` (TS mode = lowest eigenvalue) or ``tangent``
    (TS mode = the negative mode, or if none the mode, with the largest overlap with the path tangent)."""

    mode: str = "lowest"
    floor: float = FLOOR
    cap: float = CAP

    def __post_init__(self) -> None:
        if self.mode not in ("off", "lowest", "tangent"):
            raise ValueError(f"conditioning mode must be off, lowest or tangent, got {self.mode!r}")
        if not 0 < self.floor < self.cap:
            raise ValueError(f"need 0 < floor < cap, got floor {self.floor}, cap {self.cap}")


@dataclass(frozen=True)
class ConditioningRecord:
    """What one conditioning call changed."""

    kind: str
    n_negative_before: int
    n_repaired: int
    n_capped: int
    ts_mode_eigenvalue: float | None
    tangent_overlap: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def rigid_projector(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P, basis)``: the projector onto internal motions and the orthonormal rigid-body basis (3N, <= 6)."""
    vectors = rigid_body_vectors(np.asarray(positions), np.ones(len(positions)))
    u, s, _ = np.linalg.svd(vectors.T, full_matrices=False)
    basis = u[:, s > 1e-8 * s.max()]
    return np.eye(3 * len(positions)) - basis @ basis.T, basis


def _internal_modes(hessian: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the Hessian in the internal (vibrational) subspace; eigenvectors in Cartesians (3N, 3N - 6)."""
    _, basis = rigid_projector(positions)
    u, _, _ = np.linalg.svd(basis, full_matrices=True)
    internal = u[:, basis.shape[1] :]  # orthonormal complement of the rigid-body space
    values, vectors = np.linalg.eigh(internal.T @ hessian @ internal)
    return values, internal @ vectors


def condition(
    hessian: np.ndarray,
    positions: np.ndarray,
    kind: str,
    settings: ConditioningSettings | None = None,
    tangent: np.ndarray | None = None,
) -> tuple[np.ndarray, ConditioningRecord]:
    """The conditioned Hessian (eV/A^2, (3N, 3N)) for a ``kind`` = ``ts`` or ``minimum`` search."""
    if kind not in ("ts", "minimum"):
        raise ValueError(f"kind must be 'ts' or 'minimum', got {kind!r}")
    settings = settings or ConditioningSettings()
    hessian = 0.5 * (np.asarray(hessian, dtype=np.float64) + np.asarray(hessian, dtype=np.float64).T)
    values, vectors = _internal_modes(hessian, positions)
    n_negative = int(np.sum(values < 0))
    if settings.mode == "off":
        return hessian, ConditioningRecord(kind, n_negative, 0, 0, None, None)
    new = np.maximum(np.abs(values), settings.floor)
    ts_index, overlap = None, None
    if tangent is not None:
        t = np.asarray(tangent, dtype=np.float64).reshape(-1)
        overlaps = np.abs(vectors.T @ (t / np.linalg.norm(t)))
    if kind == "ts":
        ts_index = int(np.argmin(values))
        if settings.mode == "tangent" and tangent is not None:
            candidates = np.flatnonzero(values < 0) if n_negative else np.arange(len(values))
            ts_index = int(candidates[np.argmax(overlaps[candidates])])
        new[ts_index] = -max(abs(values[ts_index]), settings.floor)
        overlap = float(overlaps[ts_index]) if tangent is not None else None
    capped = np.abs(new) > settings.cap
    new = np.clip(new, -settings.cap, settings.cap)
    repaired = ~np.isclose(new, values, rtol=0, atol=1e-12) & ~capped
    out = (vectors * new) @ vectors.T
    record = ConditioningRecord(
        kind,
        n_negative,
        int(np.sum(repaired)),
        int(np.sum(capped)),
        float(new[ts_index]) if ts_index is not None else None,
        overlap,
    )
    return 0.5 * (out + out.T), record
