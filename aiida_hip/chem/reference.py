"""Reference levels with the same call signature as ``HIPModel.predict``: GFN2-xTB (tblite), DFT (PySCF).

Either can label training data or verify a model result: ``predict(numbers, positions, hessian=...)``
returns ``energy`` (eV), ``forces`` (N, 3) eV/A and ``hessian`` (3N, 3N) eV/A^2 or ``None``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..common.molecule import check_molecule
from .units import (
    ANGSTROM_TO_BOHR,
    HARTREE_PER_BOHR2_TO_EV_PER_ANGSTROM2,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

XTB_ELEMENTS = tuple(range(1, 87))


class ReferenceError(RuntimeError):
    """A reference calculation that failed (SCF not converged, bad input); names the geometry."""


def default_uhf(numbers: Sequence[int], charge: int) -> int:
    """Unpaired electrons of the lowest multiplicity allowed by the electron count's parity."""
    electrons = int(np.sum(numbers)) - int(charge)
    if electrons < 0:
        raise ValueError(f"charge {charge} leaves a negative number of electrons")
    return electrons % 2


def _check(numbers, positions, name: str) -> tuple[np.ndarray, np.ndarray]:
    return check_molecule(numbers, positions, XTB_ELEMENTS, 0.1, name)


class _XTBEngine:
    """One tblite calculator reused across displaced geometries (restarting from the last wavefunction)."""

    # Successive SCF settings tried on failure (pysisyphus notes: restart, fresh guess, more damping).
    RETRIES = ({}, {"restart": False}, {"restart": False, "max-iter": 1000, "mixer-damping": 0.2})

    def __init__(self, numbers, positions, charge: int, uhf: int, accuracy: float, name: str) -> None:
        from tblite.interface import Calculator

        self.name = name
        self.numbers, self.charge, self.uhf, self.accuracy = numbers, charge, uhf, accuracy
        self.calc = Calculator("GFN2-xTB", numbers, positions * ANGSTROM_TO_BOHR, charge=charge, uhf=uhf)
        self.calc.set("verbosity", 0)
        self.calc.set("accuracy", accuracy)
        self.last = None

    def gradient(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (Hartree) and gradient (Hartree/Bohr) at ``positions`` (A)."""
        errors = []
        for settings in self.RETRIES:
            try:
                self.calc.update(positions * ANGSTROM_TO_BOHR)
                for key in ("max-iter", "mixer-damping"):
                    if key in settings:
                        self.calc.set(key, settings[key])
                restart = self.last if settings.get("restart", True) else None
                res = self.calc.singlepoint(restart) if restart is not None else self.calc.singlepoint()
                self.last = res
                return float(res.get("energy")), np.array(res.get("gradient"), dtype=np.float64)
            except Exception as exc:  # tblite raises its own error types for SCF failures
                errors.append(str(exc).strip() or type(exc).__name__)
                self.last = None
        raise ReferenceError(f"GFN2-xTB failed for {self.name}: {'; '.join(errors)}")


def _displaced_gradients(args) -> np.ndarray:
    numbers, positions, charge, uhf, accuracy, name, displacements = args
    engine = _XTBEngine(numbers, positions, charge, uhf, accuracy, name)
    return np.array([engine.gradient(d)[1].reshape(-1) for d in displacements])


class XTBReference:
    """GFN2-xTB through tblite: energy, analytic forces, central-difference Hessian of the gradient.

    ``charge`` and ``multiplicity`` apply to every molecule (default: neutral, lowest multiplicity
    from the electron parity). ``workers`` processes (default: all cores) share the 6N displacements
    of a Hessian for molecules of ``PARALLEL_MIN_ATOMS`` atoms or more.
    """

    name = "GFN2-xTB"
    #: Below this size one process is faster than starting a pool (a gradient takes milliseconds).
    PARALLEL_MIN_ATOMS = 25

    def __init__(
        self,
        charge: int = 0,
        multiplicity: int | None = None,
        fd_step: float = 5e-3,
        accuracy: float = 1.0,
        workers: int | None = None,
    ) -> None:
        if multiplicity is not None and multiplicity < 1:
            raise ValueError(f"multiplicity must be >= 1, got {multiplicity}")
        if fd_step <= 0:
            raise ValueError("fd_step must be positive")
        self.charge, self.multiplicity, self.fd_step, self.accuracy = int(charge), multiplicity, fd_step, accuracy
        self.workers = workers or os.cpu_count() or 1

    @property
    def version(self) -> str:
        from tblite import library

        return "tblite " + ".".join(str(v) for v in library.get_version())

    def _uhf(self, numbers) -> int:
        if self.multiplicity is None:
            return default_uhf(numbers, self.charge)
        uhf = self.multiplicity - 1
        if (int(np.sum(numbers)) - self.charge - uhf) % 2:
            raise ValueError(f"multiplicity {self.multiplicity} is impossible with charge {self.charge}")
        return uhf

    def predict(self, numbers, positions, hessian: str | None = "finite-difference", name: str = "molecule") -> dict:
        """Energy (eV), forces (eV/A) and, unless ``hessian is None``, the FD Hessian (eV/A^2)."""
        if hessian not in ("finite-difference", None):
            raise ValueError(f"the xTB reference offers hessian='finite-difference' or None, got {hessian!r}")
        z, pos = _check(numbers, positions, name)
        uhf = self._uhf(z)
        engine = _XTBEngine(z, pos, self.charge, uhf, self.accuracy, name)
        energy, grad = engine.gradient(pos)
        result = {
            "energy": energy * HARTREE_TO_EV,
            "forces": -grad * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
            "hessian": None,
        }
        if hessian is not None:
            result["hessian"] = self._hessian(z, pos, uhf, engine, name)
        return result

    def _hessian(self, z, pos, uhf, engine: _XTBEngine, name: str) -> np.ndarray:
        n, h = 3 * len(z), self.fd_step
        displacements = []
        for k in range(n):
            for sign in (1.0, -1.0):
                d = pos.copy().reshape(-1)
                d[k] += sign * h
                displacements.append(d.reshape(-1, 3))
        if self.workers > 1 and len(z) >= self.PARALLEL_MIN_ATOMS:
            chunks = np.array_split(np.arange(2 * n), self.workers)
            jobs = [(z, pos, self.charge, uhf, self.accuracy, name, [displacements[i] for i in c]) for c in chunks]
            # spawn, not fork: a forked child inherits tblite's OpenMP state and can hang.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
                grads = np.concatenate(list(pool.map(_displaced_gradients, jobs)))
        else:
            grads = np.array([engine.gradient(d)[1].reshape(-1) for d in displacements])
        grads *= HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        hess = (grads[0::2] - grads[1::2]) / (2.0 * h)  # row k: d(gradient)/dx_k
        return 0.5 * (hess + hess.T)


class DFTReference:
    """Kohn-Sham DFT through PySCF (optional extra ``[dft]``): energy, analytic gradient and Hessian.

    Meant for verifying small molecules (a TS found with HIP: one imaginary mode? small forces?).
    ``functional="hf"`` gives Hartree-Fock.
    """

    def __init__(
        self,
        functional: str = "b3lyp",
        basis: str = "6-31g*",
        charge: int = 0,
        multiplicity: int | None = None,
        conv_tol: float = 1e-10,
        max_memory_mb: int = 4000,
    ) -> None:
        self.functional, self.basis, self.charge = functional, basis, int(charge)
        self.multiplicity, self.conv_tol, self.max_memory_mb = multiplicity, conv_tol, max_memory_mb
        self.name = f"{functional}/{basis}"

    @property
    def version(self) -> str:
        import pyscf

        return f"pyscf {pyscf.__version__}"

    def predict(self, numbers, positions, hessian: str | None = "analytic", name: str = "molecule") -> dict:
        """Energy (eV), forces (eV/A) and, unless ``hessian is None``, the analytic Hessian (eV/A^2)."""
        if hessian not in ("analytic", None):
            raise ValueError(f"the DFT reference offers hessian='analytic' or None, got {hessian!r}")
        try:
            from pyscf import dft, gto, scf
        except ImportError as exc:
            raise ReferenceError("PySCF is not installed: pip install 'aiida-hip[dft]'") from exc
        z, pos = _check(numbers, positions, name)
        uhf = default_uhf(z, self.charge) if self.multiplicity is None else self.multiplicity - 1
        try:
            mol = gto.M(
                atom=[(int(a), tuple(p)) for a, p in zip(z, pos, strict=True)],
                basis=self.basis,
                charge=self.charge,
                spin=uhf,
                unit="Angstrom",
                verbose=0,
            )
        except Exception as exc:
            raise ReferenceError(f"PySCF cannot build {name} ({self.name}): {exc}") from exc
        mol.max_memory = self.max_memory_mb
        if self.functional.lower() == "hf":
            mf = scf.RHF(mol) if uhf == 0 else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if uhf == 0 else dft.UKS(mol)
            mf.xc = self.functional
        mf.conv_tol = self.conv_tol
        energy = mf.kernel()
        if not mf.converged:
            raise ReferenceError(f"{self.name} SCF did not converge for {name}")
        grad = mf.nuc_grad_method().kernel()
        result = {
            "energy": float(energy) * HARTREE_TO_EV,
            "forces": -np.asarray(grad) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
            "hessian": None,
        }
        if hessian is not None:
            h = np.asarray(mf.Hessian().kernel())  # (N, N, 3, 3) Hartree/Bohr^2
            n = len(z)
            h = h.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * HARTREE_PER_BOHR2_TO_EV_PER_ANGSTROM2
            result["hessian"] = 0.5 * (h + h.T)
        return result
