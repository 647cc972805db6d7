"""Frequencies at a stationary point: Eckart-projected harmonic analysis of the level's Hessian."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..chem.vibrations import IMAGINARY_THRESHOLD, analyse
from ..common.types import Outcome
from .calculators import Evaluator


@dataclass
class FreqResult:
    """``expected`` is ``ts`` (exactly one imaginary mode) or ``minimum`` (none)."""

    expected: str
    n_imaginary: int
    ok: bool
    classification: str
    frequencies_cm1: np.ndarray
    imaginary_frequency_cm1: float | None
    zpe_ev: float
    energy_ev: float
    rms_force_ev_per_a: float
    hessian: np.ndarray
    hessian_source: str
    imaginary_threshold_cm1: float
    wall_time_s: float = 0.0
    #: (3N - d, N, 3) normalised Cartesian normal modes, ordered as ``frequencies_cm1``.
    modes: np.ndarray | None = None

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.ok else Outcome.WRONG_IMAGINARY_COUNT

    @property
    def verdict(self) -> str:
        """What is wrong, in words (empty when nothing is)."""
        if self.ok:
            return ""
        want = 1 if self.expected == "ts" else 0
        where = "the TS" if self.expected == "ts" else "the minimum"
        return f"{self.n_imaginary} imaginary mode(s) at {where}, expected {want}"

    def summary(self) -> dict:
        return {
            "expected": self.expected,
            "n_imaginary": self.n_imaginary,
            "ok": self.ok,
            "classification": self.classification,
            "imaginary_frequency_cm1": self.imaginary_frequency_cm1,
            "lowest_frequencies_cm1": [round(float(f), 2) for f in self.frequencies_cm1[:6]],
            "zpe_ev": self.zpe_ev,
            "energy_ev": self.energy_ev,
            "rms_force_ev_per_a": self.rms_force_ev_per_a,
            "hessian_source": self.hessian_source,
            "imaginary_threshold_cm1": self.imaginary_threshold_cm1,
            "wall_time_s": self.wall_time_s,
        }


def run_freq(
    atoms: Atoms,
    evaluator: Evaluator,
    expected: str = "ts",
    hessian: str | None = None,
    imaginary_threshold: float = IMAGINARY_THRESHOLD,
    workdir: str | Path | None = None,
) -> FreqResult:
    """Hessian (``hessian`` mode, default the level's; the exact one if the level has none) -> modes.

    Imaginary modes softer than ``imaginary_threshold`` cm^-1 are numerical noise and not counted.
    """
    if expected not in ("ts", "minimum"):
        raise ValueError(f"expected must be 'ts' or 'minimum', got {expected!r}")
    t0 = time.perf_counter()
    mode = hessian or evaluator.level.hessian
    if mode == "none":
        mode = evaluator.level.exact_hessian
    out = evaluator.gradient(atoms.numbers, atoms.positions)
    h = evaluator.hessian(atoms.numbers, atoms.positions, mode=mode)
    vib = analyse(atoms.numbers, atoms.positions, h, imaginary_threshold=imaginary_threshold)
    want = 1 if expected == "ts" else 0
    imag = float(vib.frequencies[0]) if vib.n_imaginary > 0 else None
    result = FreqResult(
        expected=expected,
        n_imaginary=vib.n_imaginary,
        ok=vib.n_imaginary == want,
        classification=vib.classification,
        frequencies_cm1=vib.frequencies,
        imaginary_frequency_cm1=imag,
        zpe_ev=float(vib.zpe),
        energy_ev=out["energy"],
        rms_force_ev_per_a=float(np.sqrt(np.mean(out["forces"] ** 2))),
        hessian=h,
        hessian_source=mode,
        imaginary_threshold_cm1=imaginary_threshold,
        wall_time_s=time.perf_counter() - t0,
        modes=vib.modes,
    )
    if workdir is not None:
        folder = Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
        # the geometry and its labels too: a reference Hessian is training data (aiida_hip.dataset.harvest)
        np.savez(
            folder / "freq.npz",
            hessian=h,
            frequencies_cm1=vib.frequencies,
            modes=vib.modes,
            numbers=np.asarray(atoms.numbers),
            positions=np.asarray(atoms.positions, dtype=np.float64),
            energy_ev=np.float64(out["energy"]),
            forces=np.asarray(out["forces"], dtype=np.float64),
        )
        (folder / "freq.json").write_text(json.dumps(result.summary(), indent=2))
    return result
