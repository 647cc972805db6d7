"""How the level's Hessians reach one TS optimisation: conditioned, refreshed every k steps, and cut off
by a guard when they disagree with the surface.

- ``refresh``: a fresh Hessian every ``k`` steps, quasi-Newton updates in between (Sella's TS-BFGS,
  pysisyphus's Bofill); ``0`` only at the start, then the optimiser's own estimate (Sella's iterative
  lowest-mode refinement, or Bofill updates).
- The guard compares, over each interval between two Hessians, the curvature the last Hessian predicted
  along the actual displacement with the curvature the gradients measured there. After ``strikes``
  disagreements in a row the search goes on Hessian-free (Sella's own estimate, Bofill updates), and
  the summary says at which call. An exact Hessian is never guarded: it cannot disagree with itself
  beyond anharmonicity.
- Before a saddle search trusts its first approximate Hessian, the guard probes the surface along that
  Hessian's lowest mode (the mode the optimiser would climb): two gradients give the true curvature there.
  A disagreement trips the guard at call 0, so a model that is wrong about the reaction mode costs two
  gradients instead of a whole search steered by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .calculators import Evaluator
from .conditioning import ConditioningSettings, condition


@dataclass(frozen=True)
class HessianPolicy:
    refresh: int = 1
    conditioning: ConditioningSettings = field(default_factory=ConditioningSettings)
    #: condition exact Hessians too (by default the level's exact Hessian reaches the optimiser as it is)
    condition_exact: bool = False
    guard: bool = True
    #: a curvature disagreement counts when |predicted - measured| > tolerance * max(|measured|, scale)
    guard_tolerance: float = 0.5
    #: eV/A^2: curvatures below this are noise for the guard
    guard_scale: float = 0.5
    guard_strikes: int = 2
    #: saddle searches: check the first Hessian's lowest mode against the surface before using it
    probe: bool = True
    #: A: central-difference step of the probe along the (unit, Cartesian) mode
    probe_step: float = 0.005

    def __post_init__(self) -> None:
        if self.refresh < 0:
            raise ValueError(f"refresh must be >= 0 (0: at the start only), got {self.refresh}")


class HessianFeed:
    """The Hessian source of one optimisation: ``feed(atoms_numbers, positions) -> (3N, 3N)`` eV/A^2."""

    def __init__(
        self,
        evaluator: Evaluator,
        kind: str,
        policy: HessianPolicy | None = None,
        tangent: np.ndarray | None = None,
    ) -> None:
        self.evaluator, self.kind, self.tangent = evaluator, kind, tangent
        self.policy = policy or HessianPolicy()
        self.approximate = not evaluator.level.hessian_is_exact
        self.records: list[dict] = []
        self.strikes = 0
        self.tripped_at: int | None = None
        self.on_trip: Callable[[], None] | None = None
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # positions, gradient, Hessian

    @property
    def active(self) -> bool:
        return self.tripped_at is None

    def __call__(self, numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.float64)
        hessian = self.evaluator.hessian(numbers, positions)
        record: dict = {"call": len(self.records)}
        if self.approximate or self.policy.condition_exact:
            hessian, conditioning = condition(hessian, positions, self.kind, self.policy.conditioning, self.tangent)
            record |= {"n_repaired": conditioning.n_repaired, "n_capped": conditioning.n_capped}
            if conditioning.tangent_overlap is not None:
                record["tangent_overlap"] = round(conditioning.tangent_overlap, 4)
        if self.approximate and self.policy.guard:
            record |= self._guard(numbers, positions, hessian)
            if self.policy.probe and self.kind == "ts" and not self.records:
                record |= self._probe(numbers, positions, hessian)
        self.records.append(record)
        return hessian

    def _disagree(self, predicted: float, measured: float) -> bool:
        scale = max(abs(measured), self.policy.guard_scale)
        return abs(predicted - measured) > self.policy.guard_tolerance * scale

    def _trip(self) -> None:
        self.tripped_at = len(self.records)
        if self.on_trip is not None:
            self.on_trip()

    def _probe(self, numbers, positions: np.ndarray, hessian: np.ndarray) -> dict:
        """The surface's curvature along the Hessian's lowest mode, by central differences of two gradients."""
        values, vectors = np.linalg.eigh(hessian)
        mode, h = vectors[:, 0], self.policy.probe_step
        step = h * mode.reshape(-1, 3)
        plus = -self.evaluator.gradient(numbers, positions + step)["forces"].reshape(-1)
        minus = -self.evaluator.gradient(numbers, positions - step)["forces"].reshape(-1)
        measured, predicted = float(mode @ (plus - minus)) / (2 * h), float(values[0])
        out = {"probe_predicted": round(predicted, 4), "probe_measured": round(measured, 4)}
        if self._disagree(predicted, measured):
            self._trip()
            out["guard_tripped"] = True
        return out

    def _guard(self, numbers, positions: np.ndarray, hessian: np.ndarray) -> dict:
        gradient = -self.evaluator.gradient(numbers, positions)["forces"].reshape(-1)
        out: dict = {}
        if self._last is not None:
            x0, g0, h0 = self._last
            dx = (positions - x0).reshape(-1)
            norm2 = float(dx @ dx)
            if norm2 > 1e-8:
                measured = float(dx @ (gradient - g0)) / norm2
                predicted = float(dx @ h0 @ dx) / norm2
                self.strikes = self.strikes + 1 if self._disagree(predicted, measured) else 0
                out = {"curvature_measured": round(measured, 4), "curvature_predicted": round(predicted, 4)}
                if self.strikes >= self.policy.guard_strikes and self.tripped_at is None:
                    self._trip()
                    out["guard_tripped"] = True
        self._last = (positions.copy(), gradient, hessian)
        return out

    def summary(self) -> dict:
        repaired = [r.get("n_repaired", 0) for r in self.records]
        return {
            "policy": asdict(self.policy),
            "approximate": self.approximate,
            "n_hessians": len(self.records),
            "n_repaired_total": int(sum(repaired)),
            "guard_tripped_at": self.tripped_at,
            "steps": self.records,
        }
