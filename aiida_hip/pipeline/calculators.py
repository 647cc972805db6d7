"""Adapters between the levels (HIP model, GFN2-xTB) and the host codes (pysisyphus, ASE).

A :class:`Level` says what computes energies and forces (``calculator``) and what computes Hessians
(``hessian``); an :class:`Evaluator` runs it in eV/Angstrom and counts the calls. The pysisyphus
calculator converts to Hartree/Bohr at its boundary and nowhere else.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator as ASECalculator
from ase.calculators.calculator import all_changes

from ..chem.reference import DFTReference, XTBReference
from ..chem.units import BOHR_TO_ANGSTROM, EV_TO_HARTREE
from ..common.files import SHIPPED_CHECKPOINT, sha256_of
from ..common.geometry import rigid_body_vectors
from ..common.level import Level, LevelError
from ..common.types import Calculator, HessianMode
from .dft_check import DFTCheckSettings

__all__ = ["Counters", "Evaluator", "Level", "LevelError", "ase_calculator", "pysis_calculator"]


@lru_cache(maxsize=4)
def cached_model(checkpoint: str | None, device: str = "cpu"):
    """Load a HIP checkpoint once per process (float64: optimisers want noise-free forces)."""
    import torch

    from ..hip import load_model

    return load_model(checkpoint, device=device, dtype=torch.float64)


@lru_cache(maxsize=4)
def checkpoint_elements(checkpoint: str | None) -> tuple[int, ...]:
    """The elements a checkpoint knows, from its stored config: torch reads the file, no model is built."""
    import torch

    path = Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return tuple(int(z) for z in payload["config"]["elements"])


def model_provenance(level: Level) -> dict | None:
    """What a result records of the checkpoint a level uses: file name, SHA-256, whether it is the shipped one."""
    if not level.uses_model:
        return None
    path = Path(level.checkpoint) if level.checkpoint else SHIPPED_CHECKPOINT
    digest = sha256_of(path)
    return {"file": path.name, "sha256": digest, "shipped": digest == sha256_of(SHIPPED_CHECKPOINT)}


@lru_cache(maxsize=4)
def cached_reference(calculator: str, charge: int, multiplicity: int | None):
    """The reference code of a level, once per process: GFN2-xTB, or DFT with the DFT check's settings."""
    if calculator == Calculator.DFT:
        dft = DFTCheckSettings()
        return DFTReference(dft.functional, dft.basis, charge, multiplicity, dft.conv_tol, dft.max_memory_mb)
    return XTBReference(charge=charge, multiplicity=multiplicity, workers=1)


#: how each reference code computes its Hessian
REFERENCE_HESSIAN = {Calculator.XTB: "finite-difference", Calculator.DFT: "analytic"}


@dataclass
class Counters:
    gradients: int = 0
    hessians: int = 0
    #: of ``hessians``, those the reference code computed (the expensive ones)
    reference_hessians: int = 0
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
    _last_gradient: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # The model loads now when it is the surface; when it only supplies Hessians for another level's
        # surface, at its first Hessian (a stage that never asks for one never loads torch). The Level
        # already refused charged or open-shell model runs.
        if self.level.calculator == Calculator.HIP and self.model is None:
            self.model = cached_model(self.level.checkpoint, self.level.device)
        if self.level.reference_calculator == Calculator.DFT and importlib.util.find_spec("pyscf") is None:
            raise LevelError("DFT needs PySCF, which is not installed: pip install 'aiida-hip[dft]'")
        if self.level.uses_reference:
            self.reference = cached_reference(
                self.level.reference_calculator, self.level.charge, self.level.multiplicity
            )

    def model_elements(self) -> tuple[int, ...]:
        """The elements the level's model knows (read from the checkpoint if the model is not loaded yet)."""
        if self.model is not None:
            return tuple(self.model.config.elements)
        return checkpoint_elements(self.level.checkpoint)

    def gradient(self, numbers, positions) -> dict:
        """``energy`` (eV) and ``forces`` (N, 3) eV/A. The last geometry's result is reused, not recounted
        (optimisers and the Hessian guard often ask twice for the same point)."""
        key = (np.asarray(numbers).tobytes(), np.asarray(positions, dtype=np.float64).tobytes())
        if self._last_gradient is not None and self._last_gradient[0] == key:
            return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in self._last_gradient[1].items()}
        t0 = time.perf_counter()
        source = self.model if self.level.calculator == Calculator.HIP else self.reference
        out = source.predict(numbers, positions, hessian=None)
        self.counters.gradients += 1
        self.counters.gradient_seconds += time.perf_counter() - t0
        result = {"energy": float(out["energy"]), "forces": np.asarray(out["forces"], dtype=np.float64)}
        self._last_gradient = (key, result)
        return {"energy": result["energy"], "forces": result["forces"].copy()}

    def hessian(self, numbers, positions, mode: str | None = None) -> np.ndarray:
        """(3N, 3N) Hessian in eV/A^2 from ``mode`` (default: the level's Hessian)."""
        mode = mode or self.level.hessian
        if mode == HessianMode.NONE:
            raise LevelError("this level computes no Hessians (hessian='none')")
        t0 = time.perf_counter()
        if mode == HessianMode.REFERENCE:
            calculator = self.level.reference_calculator
            reference = getattr(self, "reference", None) or cached_reference(
                calculator, self.level.charge, self.level.multiplicity
            )
            out = reference.predict(numbers, positions, hessian=REFERENCE_HESSIAN[Calculator(calculator)])
            self.counters.reference_hessians += 1
        else:
            if self.model is None:
                self.model = cached_model(self.level.checkpoint, self.level.device)
            model = self.model
            # only the Hessian is used here: no backward pass for forces
            out = model.predict(numbers, positions, hessian=mode, forces=False)
        self.counters.hessians += 1
        self.counters.hessian_seconds += time.perf_counter() - t0
        h = np.asarray(out["hessian"], dtype=np.float64)
        return 0.5 * (h + h.T)


def rigid_basis(positions: np.ndarray) -> np.ndarray:
    """Orthonormal Cartesian translation + rotation vectors, shape (3N, 6) (5 if linear)."""
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


def pysis_calculator(evaluator: Evaluator, project: bool = True, feed=None):
    """A pysisyphus ``Calculator`` over ``evaluator`` (Hartree and Bohr at its boundary); Hessians from
    ``feed`` (a :class:`~.hessian_feed.HessianFeed`: conditioned and guarded) when one is given."""
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
            h = feed(numbers, positions) if feed is not None else self.evaluator.hessian(numbers, positions)
            if project:
                h = project_rigid(h, positions)
            out["hessian"] = h * hessian_factor
            return out

    return HIPPysisCalculator()


def ase_calculator(evaluator: Evaluator):
    """An ASE calculator over ``evaluator``; ``get_hessian(atoms)`` suits Sella's ``hessian_function``."""

    class HIPASECalculator(ASECalculator):
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
