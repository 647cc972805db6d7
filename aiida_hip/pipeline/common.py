"""Pieces every stage shares: stage folders, ASE <-> pysisyphus geometries, Hessian files, guess Hessians."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms

from ..chem.units import ANGSTROM_TO_BOHR, BOHR_TO_ANGSTROM, EV_TO_HARTREE, HARTREE_TO_EV


def quiet_pysisyphus() -> None:
    """Import pysisyphus once with its configuration banner silenced (it prints on import)."""
    if "pysisyphus.config" in sys.modules:
        return
    os.environ.setdefault("PYSISRC", str(Path(__file__).with_name("pysisyphusrc")))
    with contextlib.redirect_stdout(io.StringIO()):
        import pysisyphus.config  # noqa: F401


def filter_rigid_eigvals(self, eigvals, eigvecs, mask=False):
    """``HessianOptimizer.filter_small_eigvals`` that drops at most the six smallest |eigenvalues| below the
    threshold (the rigid-body modes) instead of asserting that there are no more.

    A guess Hessian of loosely bound fragments, or a quasi-Newton-updated one, can have more than six
    near-zero eigenvalues; pysisyphus then stopped RS-P-RFO and RFO with an AssertionError. The extra soft
    modes stay in the step, where the rational-function shift handles them.
    """
    small = np.flatnonzero(np.abs(eigvals) < self.small_eigval_thresh)
    small = small[np.argsort(np.abs(eigvals[small]))][:6]
    drop = np.zeros(len(eigvals), dtype=bool)
    drop[small] = True
    self.log(f"Found {int(drop.sum())} small eigenvalues in Hessian. Removed them and their eigenvectors.")
    if mask:
        return eigvals[~drop], eigvecs[:, ~drop], drop
    return eigvals[~drop], eigvecs[:, ~drop]


def mute_file_logs() -> None:
    """pysisyphus modules open log files in whatever the working directory was at import time;
    mute every such handler so that nothing is written outside the stage folders."""
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL + 1)


@contextlib.contextmanager
def stage_folder(path: str | Path, quiet: bool = True) -> Iterator[Path]:
    """Run a pysisyphus stage inside its own folder: it writes files into the working directory.

    The working directory is process-wide: stages must not run in threads of one process.
    """
    quiet_pysisyphus()
    mute_file_logs()
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    log = open(path / "stage.log", "a")  # noqa: SIM115 - closed below
    redirect = contextlib.ExitStack()
    if quiet:  # stdout tables, numpy warnings and the interpolator's messages go to the stage's log
        redirect.enter_context(contextlib.redirect_stdout(log))
        redirect.enter_context(contextlib.redirect_stderr(log))
        redirect.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", RuntimeWarning)
    previous = logging.root.manager.disable
    if quiet:  # pysisyphus also reports through loggers with handlers on the console
        logging.disable(logging.INFO)
    try:
        with contextlib.chdir(path), redirect:
            yield path
    finally:
        logging.disable(previous)
        log.close()


def stopped(what: str, exc: Exception) -> str:
    """Message for a stage that broke down: pysisyphus and Sella raise bare exceptions, often without text."""
    return f"{what}: {type(exc).__name__} {exc}".rstrip()


def to_geometry(atoms: Atoms, calculator=None, coord_type: str = "cart"):
    """ASE ``Atoms`` (A) -> pysisyphus ``Geometry`` (Bohr)."""
    from pysisyphus.Geometry import Geometry

    geom = Geometry(atoms.get_chemical_symbols(), atoms.positions.reshape(-1) * ANGSTROM_TO_BOHR, coord_type=coord_type)
    if calculator is not None:
        geom.set_calculator(calculator)
    return geom


def to_atoms(symbols, coords_bohr) -> Atoms:
    """pysisyphus atoms + flat Bohr coordinates -> ASE ``Atoms`` (A)."""
    symbols = [s.capitalize() for s in symbols]
    return Atoms(symbols=symbols, positions=np.asarray(coords_bohr, dtype=np.float64).reshape(-1, 3) * BOHR_TO_ANGSTROM)


def write_hessian(path: str | Path, hessian_ev: np.ndarray) -> Path:
    """A Cartesian Hessian (eV/A^2) as the HDF5 file pysisyphus reads for ``hessian_init``."""
    path = Path(path)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("hessian", data=np.asarray(hessian_ev) * EV_TO_HARTREE * BOHR_TO_ANGSTROM**2)
    return path


def model_guess_hessian(geom, kind: str = "lindh") -> np.ndarray:
    """A model (Lindh/Fischer/Swart) Hessian in Cartesians, Hartree/Bohr^2; no calculator call."""
    from pysisyphus.optimizers.guess_hessians import get_guess_hessian

    with contextlib.redirect_stdout(io.StringIO()):
        hessian, _ = get_guess_hessian(geom, kind, cart_gradient=np.zeros(geom.cart_coords.size))
    return 0.5 * (hessian + hessian.T)


def ts_guess_hessian(geom, tangent: np.ndarray, curvature: float) -> np.ndarray:
    """The Hessian-free TS baseline's start: a Lindh Hessian whose only negative mode is the tangent.

    ``curvature`` (Hartree/Bohr^2, negative) is the energy curvature along the path at the guess.
    """
    hessian = model_guess_hessian(geom)
    t = np.asarray(tangent, dtype=np.float64).reshape(-1)
    t = t / np.linalg.norm(t)
    proj = np.eye(t.size) - np.outer(t, t)
    out = proj @ hessian @ proj + curvature * np.outer(t, t)
    return 0.5 * (out + out.T)


def choose_root(eigenvalues: np.ndarray, eigenvectors: np.ndarray, tangent: np.ndarray, small: float = 1e-6) -> int:
    """The mode to follow uphill: the negative mode with the largest overlap with the path tangent.

    With no negative mode (a guess in the convex region) the non-trivial mode with the largest
    overlap is followed instead.
    """
    t = np.asarray(tangent, dtype=np.float64).reshape(-1)
    t = t / np.linalg.norm(t)
    overlaps = np.abs(eigenvectors.T @ t)
    negative = eigenvalues < -small
    candidates = negative if negative.any() else np.abs(eigenvalues) > small
    overlaps = np.where(candidates, overlaps, -1.0)
    return int(np.argmax(overlaps))


def energy_ev(geom) -> float:
    return float(geom.energy) * HARTREE_TO_EV


def forces_ev(geom) -> np.ndarray:
    return np.asarray(geom.cart_forces, dtype=np.float64).reshape(-1, 3) * HARTREE_TO_EV / BOHR_TO_ANGSTROM
