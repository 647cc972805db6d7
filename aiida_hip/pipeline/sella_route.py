"""The second TS route: geodesic interpolation -> Sella (internal coordinates) -> Sella IRC.

Same inputs and result types as the pysisyphus stages, so ``ts_search`` can use either route or
fall back from one to the other. The model Hessian reaches Sella as ``hessian_function`` (the quacc
NewtonNet recipe); with ``hessian='none'`` Sella's own iterative (gradient-only) diagonalisation runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from ..chem.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from ..common.types import HessianMode
from .calculators import Evaluator, ase_calculator, project_rigid, rigid_basis
from .common import stage_folder, stopped
from .convergence import get_convergence
from .hessian_feed import HessianFeed
from .irc import IRCResult, IRCSettings
from .opt import OptResult, run_opt
from .path import PathResult, PathSettings, failed_path, geodesic_images
from .tsopt import TSOptResult, TSOptSettings, check_fragments


def _quiet(folder: Path):
    """The stage folder, with jax (imported by Sella) kept on one CPU thread."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    return stage_folder(folder)


@dataclass(frozen=True)
class SellaSettings:
    """Sella TS search: at most ``max_steps`` steps to the preset's max force (as eV/A)."""

    max_steps: int = 200


def geodesic_guess(
    reactant: Atoms, product: Atoms, evaluator: Evaluator, settings: PathSettings, workdir: str | Path
) -> PathResult:
    """Highest-energy image of a geodesic interpolation (no path relaxation): Sella copes with it."""
    t0 = time.perf_counter()
    folder = Path(workdir).resolve()  # the stage chdirs into it
    with _quiet(folder):
        try:
            images = geodesic_images(reactant, product, max(settings.max_nodes + 2, 11), settings.seed)
        except Exception as exc:  # the interpolator raises plain errors on odd inputs
            return failed_path(stopped("geodesic interpolation failed", exc), t0, method="geodesic")
    energies = np.array([evaluator.gradient(im.numbers, im.positions)["energy"] for im in images])
    write(folder / "path.xyz", images)
    result = PathResult(
        False,
        True,
        True,
        0,
        "",
        energies=energies.tolist(),
        path=images,
        method="geodesic",
        path_file=folder / "path.xyz",
    )
    result = guess_of_rank(result, settings.guess_rank)
    if result.guess is not None:
        write(folder / "ts_guess.xyz", result.guess)
    result.wall_time_s = time.perf_counter() - t0
    return result


def guess_of_rank(path: PathResult, rank: int) -> PathResult:
    """The TS guess at the ``rank``-th highest local maximum of a geodesic path's energies (0: the highest),
    with the tangent there; a path without that maximum gives no guess and says why."""
    images, energies = path.path, np.asarray(path.energies)
    out = replace(path, success=False, guess=None, tangent=None, hei_index=None)
    maxima = local_maxima(energies)
    if not maxima:
        out.message = "the highest-energy image is an endpoint: no barrier between reactant and product"
    elif rank >= len(maxima):
        out.message = f"the path has {len(maxima)} local maximum(s): no guess of rank {rank}"
    else:
        hei = maxima[rank]
        tangent = images[hei + 1].positions - images[hei - 1].positions
        out.success, out.guess, out.hei_index = True, images[hei].copy(), float(hei)
        out.tangent = tangent / np.linalg.norm(tangent)
        what = "highest" if rank == 0 else f"local maximum {rank + 1} by energy"
        out.message = f"TS guess from the geodesic image at node {hei} ({what})"
    return out


def local_maxima(energies: np.ndarray) -> list[int]:
    """Interior images higher than both neighbours, highest first (an interior argmax is always first)."""
    e = np.asarray(energies, dtype=float)
    inner = [i for i in range(1, len(e) - 1) if e[i] >= e[i - 1] and e[i] >= e[i + 1]]
    return sorted(inner, key=lambda i: -e[i])


def _fmax(convergence: str) -> float:
    return get_convergence(convergence).max_force * HARTREE_TO_EV / BOHR_TO_ANGSTROM


def run_sella_tsopt(
    guess: Atoms, evaluator: Evaluator, settings: TSOptSettings, workdir: str | Path, sella: SellaSettings
) -> TSOptResult:
    """Sella saddle search (order 1, internal coordinates) with the level's Hessians."""
    t0 = time.perf_counter()
    hessians_before = evaluator.counters.hessians
    folder = Path(workdir).resolve()  # the stage chdirs into it
    atoms = guess.copy()
    atoms.calc = ase_calculator(evaluator)
    feed = HessianFeed(evaluator, "ts", settings.hessian_policy(not evaluator.level.hessian_is_exact))
    kwargs = {}
    if evaluator.level.hessian != HessianMode.NONE and not feed.approximate:
        kwargs = _exact_hessian_kwargs(feed, settings.hessian_recalc)
    converged, message, steps = False, "", 0
    with _quiet(folder):
        from sella import Sella

        opt = Sella(
            atoms,
            order=1,
            internal=True,
            logfile=str(folder / "sella.log"),
            trajectory=str(folder / "sella.traj"),
            **kwargs,
        )
        if evaluator.level.hessian != HessianMode.NONE and feed.approximate:
            _precondition_with(opt, feed, settings.approximate_recalc)
        try:
            converged = bool(opt.run(fmax=_fmax(settings.convergence), steps=sella.max_steps))
        except Exception as exc:
            message = stopped("Sella stopped", exc)
        steps = int(opt.nsteps)
    write(folder / "ts.xyz", atoms)
    out = evaluator.gradient(atoms.numbers, atoms.positions)
    return check_fragments(
        TSOptResult(
            converged=converged,
            n_cycles=steps,
            message=message or ("converged" if converged else f"not converged in {sella.max_steps} steps"),
            ts=Atoms(numbers=atoms.numbers, positions=atoms.positions),
            energy_ev=out["energy"],
            max_force_ev_per_a=float(np.abs(out["forces"]).max()),
            n_hessian_evaluations=evaluator.counters.hessians - hessians_before,
            wall_time_s=time.perf_counter() - t0,
            hessian_feed=feed.summary() if feed.records else None,
        )
    )


def _exact_hessian_kwargs(feed: HessianFeed, refresh: int) -> dict:
    """An exact Hessian (the level's own second derivative) through ``hessian_function`` every ``refresh``
    steps (0: the start only); Sella then needs no iterative estimate (the quacc recipe)."""
    return {
        "hessian_function": lambda atoms: feed(atoms.numbers, atoms.positions),
        "diag_every_n": max(refresh - 1, 0) if refresh else np.inf,
    }


def _precondition_with(opt, feed: HessianFeed, refresh: int) -> None:
    """An approximate Hessian as the preconditioner of Sella's own iterative eigensolver, not as an oracle.

    Before each of Sella's diagonalisations that is due (the first one, then every ``refresh`` steps; 0: the
    first only) the conditioned approximate Hessian replaces Sella's current one; Sella then refines its
    lowest modes with Hessian-vector products measured on the true surface, so a wrongly ordered soft mode
    of the model cannot become the TS mode. After a guard trip Sella goes on with its own Hessian alone.
    """
    iterative, calls = opt.pes.diag, {"n": 0}

    def diag(*args, **kwargs):
        due = calls["n"] == 0 or (refresh > 0 and feed.active)
        calls["n"] += 1
        if due and feed.active:
            atoms = opt.pes.atoms
            hessian = feed(atoms.numbers, atoms.positions)
            if feed.active:  # the guard may have tripped on this very Hessian
                opt.pes.H.set_B(opt.pes._convert_cartesian_hessian_to_internal(hessian))
        return iterative(*args, **kwargs)

    opt.pes.diag = diag
    if refresh > 0:
        opt.diag_every_n = refresh - 1
        feed.on_trip = lambda: setattr(opt, "diag_every_n", np.inf)


def run_sella_min(
    atoms: Atoms, evaluator: Evaluator, convergence: str, max_steps: int, workdir: str | Path
) -> OptResult:
    """Sella minimisation (order 0, internal coordinates, no Hessian): from next to a saddle it took 3-5x fewer
    gradients than Cartesian RFO-BFGS started from the TS's own Hessian (20 development TSs, QRC sides)."""
    t0 = time.perf_counter()
    folder = Path(workdir).resolve()
    work = atoms.copy()
    work.calc = ase_calculator(evaluator)
    converged, message = False, ""
    with _quiet(folder):
        from sella import Sella

        opt = Sella(work, order=0, internal=True, logfile=str(folder / "sella_min.log"))
        try:
            converged = bool(opt.run(fmax=_fmax(convergence), steps=max_steps))
        except Exception as exc:
            message = stopped("Sella minimisation stopped", exc)
        steps = int(opt.nsteps)
    final = Atoms(numbers=work.numbers, positions=work.positions)
    write(folder / "final.xyz", final)
    out = evaluator.gradient(final.numbers, final.positions)
    return OptResult(
        converged=converged,
        n_cycles=steps,
        message=message or ("converged" if converged else f"not converged in {max_steps} steps"),
        atoms=final,
        energy_ev=out["energy"],
        max_force_ev_per_a=float(np.abs(out["forces"]).max()),
        wall_time_s=time.perf_counter() - t0,
    )


def run_sella_irc(
    ts: Atoms, ts_hessian: np.ndarray, evaluator: Evaluator, settings: IRCSettings, workdir: str | Path
) -> IRCResult:
    """Sella IRC both ways, started from ``ts_hessian`` with its rigid-body block shifted to +1 eV/A^2.

    A raw Hessian has small negative translation/rotation eigenvalues, and the IRC then never meets
    its convergence test; the shift removes them without touching the vibrations.
    """
    t0 = time.perf_counter()
    folder = Path(workdir).resolve()  # the stage chdirs into it

    def shifted(h: np.ndarray, positions: np.ndarray) -> np.ndarray:
        basis = rigid_basis(positions)
        return project_rigid(h, positions) + basis @ basis.T

    start = shifted(ts_hessian, ts.positions)
    calls = {"n": 0}

    def hessian(a: Atoms) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1 or not evaluator.level.hessian_is_exact:  # approximate ones: the start only
            return start
        return shifted(evaluator.hessian(a.numbers, a.positions), a.positions)

    atoms = ts.copy()
    atoms.calc = ase_calculator(evaluator)
    frames: dict[str, list[Atoms]] = {"forward": [], "reverse": []}
    frame_energies: dict[str, list[float]] = {"forward": [], "reverse": []}
    with _quiet(folder):
        from sella import IRC

        irc = IRC(
            atoms, logfile=str(folder / "irc.log"), dx=settings.step_length, eta=1e-4, gamma=0, hessian_function=hessian
        )
        try:
            for direction in ("forward", "reverse"):
                for _ in irc.irun(fmax=0.05, steps=settings.max_cycles, direction=direction):
                    frames[direction].append(Atoms(numbers=atoms.numbers, positions=atoms.positions.copy()))
                    frame_energies[direction].append(atoms.get_potential_energy())  # cached: no new call
        except Exception as exc:
            return IRCResult(False, stopped("Sella IRC stopped", exc), wall_time_s=time.perf_counter() - t0)
    trajectory = frames["forward"][::-1] + [ts.copy()] + frames["reverse"]
    write(folder / "irc.xyz", trajectory)
    e_ts = evaluator.gradient(ts.numbers, ts.positions)["energy"]
    energies = frame_energies["forward"][::-1] + [e_ts] + frame_energies["reverse"]
    result = IRCResult(
        True,
        "both directions followed (Sella)",
        trajectory[0],
        trajectory[-1],
        energies_ev=energies,
        trajectory=trajectory,
        n_cycles=len(trajectory) - 1,
    )
    result.forward_opt = run_opt(trajectory[0], evaluator, settings.endpoint_opt, folder / "forward_end_opt")
    result.backward_opt = run_opt(trajectory[-1], evaluator, settings.endpoint_opt, folder / "backward_end_opt")
    result.forward_end, result.backward_end = result.forward_opt.atoms, result.backward_opt.atoms
    result.wall_time_s = time.perf_counter() - t0
    return result
