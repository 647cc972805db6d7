"""RFO minimisation with the level's Hessians, BFGS-updated between recalculations."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from ..chem.units import BOHR_TO_ANGSTROM, EV_TO_HARTREE
from ..common.types import Outcome
from .calculators import Evaluator, pysis_calculator
from .common import (
    energy_ev,
    filter_rigid_eigvals,
    forces_ev,
    model_guess_hessian,
    quiet_pysisyphus,
    stage_folder,
    stopped,
    to_atoms,
    to_geometry,
    write_hessian,
)
from .convergence import get_convergence
from .hessian_feed import HessianFeed, HessianPolicy


#: the ends of a TS search (reactant, product, IRC ends): RFO-BFGS from one Hessian of the level (conditioned
#: if approximate), not a Hessian every step; these minimisations were half the wall time of a reference search
def endpoint_settings(convergence: str = "normal", max_cycles: int = 150) -> OptSettings:
    return OptSettings(convergence=convergence, max_cycles=max_cycles, hessian_recalc=None, hessian_init="calc")


@dataclass(frozen=True)
class OptSettings:
    """150 steps at Gaussian default convergence, as the seed's relaxations; a Hessian every step.

    ``hessian_init``: ``calc`` starts from the level's Hessian, ``guess`` from a Lindh model Hessian,
    ``auto`` from the level's Hessian when it is recalculated and the guess otherwise. With
    ``hessian_recalc=None`` the start Hessian is only BFGS-updated (the seed's "RFO-BFGS ... init").
    """

    convergence: str = "normal"
    max_cycles: int = 150
    hessian_recalc: int | None = 1
    trust_radius: float = 0.3
    trust_max: float = 0.5
    hessian_init: str = "auto"
    #: ``cart`` (Cartesians) or pysisyphus's ``redund`` (redundant internals, as the seed's relaxations)
    coord_type: str = "cart"

    def __post_init__(self) -> None:
        if self.hessian_init not in ("auto", "calc", "guess"):
            raise ValueError(f"hessian_init must be auto, calc or guess, got {self.hessian_init!r}")
        if self.coord_type not in ("cart", "redund"):
            raise ValueError(f"coord_type must be cart or redund, got {self.coord_type!r}")


@dataclass
class OptResult:
    converged: bool
    n_cycles: int
    message: str
    atoms: Atoms
    energy_ev: float
    max_force_ev_per_a: float
    n_hessian_evaluations: int = 0
    wall_time_s: float = 0.0

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.converged else Outcome.NOT_CONVERGED

    def summary(self) -> dict:
        return {
            "converged": self.converged,
            "n_cycles": self.n_cycles,
            "message": self.message,
            "energy_ev": self.energy_ev,
            "max_force_ev_per_a": self.max_force_ev_per_a,
            "n_hessian_evaluations": self.n_hessian_evaluations,
            "wall_time_s": self.wall_time_s,
        }


def run_opt(atoms: Atoms, evaluator: Evaluator, settings: OptSettings, workdir: str | Path) -> OptResult:
    """Minimise ``atoms``; with ``hessian='none'`` a Lindh model Hessian and BFGS updates only."""
    quiet_pysisyphus()
    from pysisyphus.optimizers.RFOptimizer import RFOptimizer

    class LenientRFOptimizer(RFOptimizer):
        filter_small_eigvals = filter_rigid_eigvals

    t0 = time.perf_counter()
    hessians_before = evaluator.counters.hessians
    thresh = get_convergence(settings.convergence).pysisyphus
    # approximate Hessians: every eigenvalue made positive (at least the floor), no guard needed downhill
    feed = HessianFeed(evaluator, "minimum", HessianPolicy(refresh=settings.hessian_recalc or 0, guard=False))
    with stage_folder(workdir) as folder:
        geom = to_geometry(atoms, pysis_calculator(evaluator, feed=feed), coord_type=settings.coord_type)
        start = settings.hessian_init
        if start == "auto":
            start = "guess" if settings.hessian_recalc is None else "calc"
        if (evaluator.level.hessian == "none" or start == "guess") and settings.coord_type != "cart":
            init = "lindh"  # pysisyphus builds the model Hessian in its internal coordinates
        elif evaluator.level.hessian == "none" or start == "guess":
            guess = model_guess_hessian(geom) / (EV_TO_HARTREE * BOHR_TO_ANGSTROM**2)
            init = str(write_hessian(folder / "guess_hessian.h5", guess))
        else:
            init = "calc"
        recalc = None if evaluator.level.hessian == "none" else settings.hessian_recalc
        opt = LenientRFOptimizer(
            geom,
            thresh=thresh,
            max_cycles=settings.max_cycles,
            hessian_init=init,
            hessian_recalc=recalc,
            hessian_update="bfgs",
            trust_radius=settings.trust_radius,
            trust_max=settings.trust_max,
            out_dir=str(folder),
            dump=False,
        )
        message = ""
        try:
            opt.run()
        except Exception as exc:
            message = stopped("RFO stopped", exc)
        converged = bool(opt.is_converged)
        final = to_atoms(geom.atoms, geom.cart_coords)
        write(folder / "final.xyz", final)
        if not message:
            message = "converged" if converged else f"not converged in {settings.max_cycles} cycles"
        return OptResult(
            converged=converged,
            n_cycles=int(opt.cur_cycle) + 1,
            message=message,
            atoms=final,
            energy_ev=energy_ev(geom),
            max_force_ev_per_a=float(np.abs(forces_ev(geom)).max()),
            n_hessian_evaluations=evaluator.counters.hessians - hessians_before,
            wall_time_s=time.perf_counter() - t0,
        )
