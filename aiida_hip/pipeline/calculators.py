"""Adapters between the levels (HIP model, GFN2-xTB) and the host codes (pysisyphus, ASE).

A :class:`Level` says what computes energies and forces (``calculator``) and what computes Hessians
(``hessian``); an :class:`Evaluator` runs it in eV/Angstrom and counts the calls. The pysisyphus
calculator converts to Hartree/Bohr at its boundary and nowhere else.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..chem.units import BOHR_TO_ANGSTROM, EV_TO_HARTREE

CALCULATORS = ("hip", "xtb")
#: ``reference`` = GFN2-xTB finite differences; ``none`` = no Hessian is ever computed for the
#: optimiser (guess Hessian + quasi-Newton updates).
HESSIANS = ("predicted", "autograd", "finite-difference", "reference", "none")
_MODEL_HESSIANS = ("predicted", "autograd", "finite-difference")


class LevelError(ValueError):
    """An impossible combination of calculator, Hessian and checkpoint."""


@dataclass(frozen=True)
class Level:
    """Energy/forces source and Hessian source for one pipeline run."""

    calculator: str = "hip"
    hessian: str = "predicted"
    checkpoint: str | None = None
    charge: int = 0
    multiplicity: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.calculator not in CALCULATORS:
            raise LevelError(f"calculator must be one of {CALCULATORS}, got {self.calculator!r}")
        if self.hessian not in HESSIANS:
            raise LevelError(f"hessian must be one of {HESSIANS}, got {self.hessian!r}")

    @property
    def uses_model(self) -> bool:
        return self.calculator == "hip" or self.hessian in _MODEL_HESSIANS

    @property
    def exact_hessian(self) -> str:
        """The Hessian that is the true second derivative of this level's energy surface."""
        return "reference" if self.calculator == "xtb" else "autograd"

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=4)
def cached_model(checkpoint: str | None, device: str = "cpu"):
    """Load a HIP checkpoint once per process (float64: optimisers want noise-free forces)."""
    import torch

    from ..hip import load_model

    return load_model(checkpoint, device=device, dtype=torch.float64)


@lru_cache(maxsize=4)
def cached_reference(charge: int, multiplicity: int | None):
    from ..chem.reference import XTBReference

    return XTBReference(charge=charge, multiplicity=multiplicity, workers=1)


@dataclass
class Counters:
    gradients: int = 0
    hessians: int = 0
    gradient_seconds: float = 0.0
    hessian_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluator:
    """Energies, forces and Hessians of one level in eV and Angstrom, with call counters."""

    level: Level = field(default_factory=Level)
    counters: Counters = field(default_factory=Counters)
    #: anything with ``HIPModel.predict``'s signature; default: the level's checkpoint, loaded once per
    #: process (a packed job's reaction processes pass a client of the parent's model server)
    model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.level.uses_model:
            if self.model is None:
                self.model = cached_model(self.level.checkpoint, self.level.device)
            if self.level.charge != 0 or (self.level.multiplicity not in (None, 1)):
                raise LevelError("the HIP model is trained on neutral closed-shell molecules only")
        if self.level.calculator == "xtb" or self.level.hessian == "reference":
            self.reference = cached_reference(self.level.charge, self.level.multiplicity)

    def gradient(self, numbers, positions) -> dict:
        """``energy`` (eV) and ``forces`` (N, 3) eV/A."""
        t0 = time.perf_counter()
        source = self.model if self.level.calculator == "hip" else self.reference
        out = source.predict(numbers, positions, hessian=None)
        self.counters.gradients += 1
        self.counters.gradient_seconds += time.perf_counter() - t0
        return {"energy": float(out["energy"]), "forces": np.asarray(out["forces"], dtype=np.float64)}

    def hessian(self, numbers, positions, mode: str | None = None) -> np.ndarray:
        """(3N, 3N) Hessian in eV/A^2 from ``mode`` (default: the level's Hessian)."""
        mode = mode or self.level.hessian
        if mode == "none":
            raise LevelError("this level computes no Hessians (hessian='none')")
        t0 = time.perf_counter()
        if mode == "reference":
            reference = getattr(self, "reference", None) or cached_reference(self.level.charge, self.level.multiplicity)
            out = reference.predict(numbers, positions, hessian="finite-difference")
        else:
            model = getattr(self, "model", None) or cached_model(self.level.checkpoint, self.level.device)
            out = model.predict(numbers, positions, hessian=mode)
        self.counters.hessians += 1
        self.counters.hessian_seconds += time.perf_counter() - t0
        h = np.asarray(out["hessian"], dtype=np.float64)
        return 0.5 * (h + h.T)


def rigid_basis(positions: np.ndarray) -> np.ndarray:
    """Orthonormal Cartesian translation + rotation vectors, shape (3N, 6) (5 if linear)."""
    from ..chem.vibrations import rigid_body_vectors

    vectors = rigid_body_vectors(np.asarray(positions), np.ones(len(positions)))
    u, s, _ = np.linalg.svd(vectors.T, full_matrices=False)
    return u[:, s > 1e-8 * s.max()]


def project_rigid(hessian: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Remove translations and rotations from a Cartesian Hessian (P H P).

    A learned or finite-difference Hessian has small spurious translation/rotation eigenvalues, some
    negative; Cartesian RS-(P-)RFO would otherwise step along them or pick one as the TS mode.
    """
    basis = rigid_basis(positions)
    proj = np.eye(hessian.shape[0]) - basis @ basis.T
    out = proj @ hessian @ proj
    return 0.5 * (out + out.T)


def pysis_calculator(evaluator: Evaluator, project: bool = True):
    """A pysisyphus ``Calculator`` over ``evaluator`` (Hartree and Bohr at its boundary)."""
    from pysisyphus.calculators.Calculator import Calculator
    from pysisyphus.elem_data import ATOMIC_NUMBERS

    force_factor = EV_TO_HARTREE * BOHR_TO_ANGSTROM  # eV/A -> Ha/Bohr
    hessian_factor = EV_TO_HARTREE * BOHR_TO_ANGSTROM**2  # eV/A^2 -> Ha/Bohr^2

    class HIPPysisCalculator(Calculator):
        def __init__(self) -> None:
            super().__init__(charge=evaluator.level.charge, mult=evaluator.level.multiplicity or 1)
            self.evaluator = evaluator

        @staticmethod
        def _molecule(atoms, coords) -> tuple[np.ndarray, np.ndarray]:
            numbers = np.array([ATOMIC_NUMBERS[a.lower()] for a in atoms])
            return numbers, np.asarray(coords, dtype=np.float64).reshape(-1, 3) * BOHR_TO_ANGSTROM

        def get_energy(self, atoms, coords, **kwargs) -> dict:
            return {"energy": self.get_forces(atoms, coords)["energy"]}

        def get_forces(self, atoms, coords, **kwargs) -> dict:
            numbers, positions = self._molecule(atoms, coords)
            out = self.evaluator.gradient(numbers, positions)
            return {"energy": out["energy"] * EV_TO_HARTREE, "forces": out["forces"].reshape(-1) * force_factor}

        def get_hessian(self, atoms, coords, **kwargs) -> dict:
            numbers, positions = self._molecule(atoms, coords)
            out = self.get_forces(atoms, coords)
            h = self.evaluator.hessian(numbers, positions)
            if project:
                h = project_rigid(h, positions)
            out["hessian"] = h * hessian_factor
            return out

    return HIPPysisCalculator()


def ase_calculator(evaluator: Evaluator):
    """An ASE calculator over ``evaluator``; ``get_hessian(atoms)`` suits Sella's ``hessian_function``."""
    from ase.calculators.calculator import Calculator, all_changes

    class HIPASECalculator(Calculator):
        implemented_properties = ("energy", "free_energy", "forces")

        def __init__(self) -> None:
            super().__init__()
            self.evaluator = evaluator

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
            super().calculate(atoms, properties, system_changes)
            out = self.evaluator.gradient(self.atoms.numbers, self.atoms.positions)
            self.results = {"energy": out["energy"], "free_energy": out["energy"], "forces": out["forces"]}

        def get_hessian(self, atoms=None) -> np.ndarray:
            atoms = atoms if atoms is not None else self.atoms
            return self.evaluator.hessian(atoms.numbers, atoms.positions)

    return HIPASECalculator()
