"""Reaction path -> TS guess and path tangent.

Default: the growing string in Cartesian coordinates. Straight Cartesian lines between the aligned
endpoints can drive atoms through each other (CH3NC -> CH3CN swaps two collinear atoms); then, or
when the string fails, a geodesic interpolation (internal-distance metric, collision-free) is relaxed
as a climbing-image NEB instead (``method='auto'``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from math import modf
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write
from geodesic_interpolate.geodesic import Geodesic
from geodesic_interpolate.interpolation import redistribute

from ..chem.geometry import kabsch_align, min_distance
from ..chem.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from ..common.types import Outcome
from .calculators import Evaluator, pysis_calculator
from .common import quiet_pysisyphus, stage_folder, stopped, to_atoms, to_geometry


@dataclass(frozen=True)
class PathSettings:
    """ReactBench used 9 nodes and at most 50 cycles; the climbing image sharpens the TS guess."""

    max_nodes: int = 9
    max_cycles: int = 50
    climb: bool = True
    climb_rms: float = 5e-3
    reparam_every: int = 2
    perp_thresh: float = 0.05
    max_step: float = 0.1
    convergence: str = "gau_loose"
    #: ``gsm``, ``geodesic`` (geodesic interpolation + climbing-image NEB) or ``auto``.
    method: str = "auto"
    neb_max_cycles: int = 150
    #: In ``auto``, a straight line bringing two atoms closer than this (A) goes the geodesic way.
    collision_distance: float = 0.6
    seed: int = 0
    #: which local maximum of the path energy is the TS guess: 0 the highest, 1 the second-highest (a later
    #: attempt of the search, when the first TS was the wrong one); the geodesic guess only
    guess_rank: int = 0

    def __post_init__(self) -> None:
        if self.guess_rank < 0:
            raise ValueError(f"guess_rank must be >= 0, got {self.guess_rank}")


@dataclass
class PathResult:
    """Result of the path stage, whichever method made the path."""

    success: bool
    converged: bool
    fully_grown: bool
    n_cycles: int
    message: str
    guess: Atoms | None = None
    #: Unit Cartesian tangent of the path at the guess, shape (N, 3).
    tangent: np.ndarray | None = None
    #: Energy curvature along the path at the guess (eV/A^2), from the nodes around it.
    curvature: float | None = None
    hei_index: float | None = None
    energies: list[float] = field(default_factory=list)
    path: list[Atoms] = field(default_factory=list)
    wall_time_s: float = 0.0
    method: str = "gsm"
    path_file: Path | None = None

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.success else Outcome.PATH_FAILED

    def summary(self) -> dict:
        return {
            "method": self.method,
            "success": self.success,
            "converged": self.converged,
            "fully_grown": self.fully_grown,
            "n_cycles": self.n_cycles,
            "message": self.message,
            "hei_index": self.hei_index,
            "energies_ev": self.energies,
            "wall_time_s": self.wall_time_s,
        }


def failed_path(message: str, t0: float, method: str = "gsm", fully_grown: bool = False, n_cycles: int = 0):
    """A path stage that produced no TS guess."""
    return PathResult(
        False, False, fully_grown, int(n_cycles), message, wall_time_s=time.perf_counter() - t0, method=method
    )


def path_curvature(energies: np.ndarray, coords: np.ndarray, index: int) -> float:
    """Second derivative of the energy along the path (arc length) at node ``index`` (3-point fit)."""
    i = min(max(index, 1), len(energies) - 2)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(coords, axis=0), axis=1))])
    fit = np.polyfit(s[i - 1 : i + 2] - s[i], energies[i - 1 : i + 2], 2)
    return float(2.0 * fit[0])


def run_gsm(
    reactant: Atoms, product: Atoms, evaluator: Evaluator, settings: PathSettings, workdir: str | Path
) -> PathResult:
    """Grow and optimise the string; the TS guess is the splined highest-energy image."""
    quiet_pysisyphus()
    from pysisyphus.cos.GrowingString import GrowingString
    from pysisyphus.optimizers.StringOptimizer import StringOptimizer

    t0 = time.perf_counter()
    product = product.copy()
    product.positions = kabsch_align(product.positions, reactant.positions, reactant.get_masses())
    with stage_folder(workdir) as folder:
        images = [to_geometry(reactant, pysis_calculator(evaluator)), to_geometry(product, pysis_calculator(evaluator))]
        string = GrowingString(
            images,
            lambda: pysis_calculator(evaluator),
            max_nodes=settings.max_nodes,
            climb=settings.climb,
            climb_rms=settings.climb_rms,
            reparam_every=settings.reparam_every,
            perp_thresh=settings.perp_thresh,
        )
        opt = StringOptimizer(
            string,
            max_cycles=settings.max_cycles,
            max_step=settings.max_step,
            thresh=settings.convergence,
            out_dir=str(folder),
            dump=False,
            # Nodes of a climbing string can come close; pysisyphus would stop the whole string.
            check_coord_diffs=False,
        )
        try:
            opt.run()
        except Exception as exc:  # pysisyphus raises bare Exceptions on string breakdown
            return failed_path(stopped("growing string failed", exc), t0, n_cycles=opt.cur_cycle)
        if not string.fully_grown:
            return PathResult(
                False,
                bool(opt.is_converged),
                False,
                int(opt.cur_cycle) + 1,
                f"the string did not fully grow in {settings.max_cycles} cycles",
                wall_time_s=time.perf_counter() - t0,
            )
        return _guess_from_chain(string, opt, folder, t0, "gsm", settings)


def _splined_guess(string, energies: np.ndarray, hei: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Splined HEI with a tangent mixed from its two neighbouring nodes (as pysisyphus's run does).

    Falls back to the plain HEI node when the spline peaks next to an endpoint.
    """
    ev = np.asarray(energies) / HARTREE_TO_EV
    try:
        coords, _, _, index = string.get_splined_hei()
        frac, floor = modf(index)
        floor = int(floor)
        if floor < 1 or floor + 1 > len(energies) - 2:
            raise ValueError("splined HEI next to an endpoint")
        t = (1.0 - frac) * string.get_tangent(floor, energies=ev) + frac * string.get_tangent(floor + 1, energies=ev)
    except Exception:
        coords, index = string.images[hei].cart_coords, float(hei)
        t = string.get_tangent(hei, energies=ev)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    return np.asarray(coords, dtype=np.float64), t / np.linalg.norm(t), float(index)


def straight_line_min_distance(reactant: Atoms, product: Atoms, n: int = 21) -> float:
    """Shortest interatomic distance (A) along the straight Cartesian line between aligned endpoints."""
    aligned = kabsch_align(product.positions, reactant.positions, reactant.get_masses())
    return min(min_distance((1 - x) * reactant.positions + x * aligned) for x in np.linspace(0.0, 1.0, n))


def geodesic_images(reactant: Atoms, product: Atoms, n_images: int, seed: int = 0) -> list[Atoms]:
    """Geodesic interpolation (Zhu et al. 2019): smooth in scaled interatomic distances, no collisions."""
    symbols = reactant.get_chemical_symbols()
    aligned = kabsch_align(product.positions, reactant.positions, reactant.get_masses())
    state = np.random.get_state()
    np.random.seed(seed)  # the interpolation nudges at random
    level = logging.getLogger().level
    try:
        raw = redistribute(symbols, [reactant.positions, aligned], n_images, tol=1e-2)
        smoother = Geodesic(symbols, raw, 1.7, threshold=3.0, friction=1e-2, log_level=logging.WARNING)
        smoother.smooth(tol=2e-3, max_iter=15, log_level=logging.WARNING)
        path = np.asarray(smoother.path)
    finally:
        np.random.set_state(state)
        logging.getLogger().setLevel(level)
    return [Atoms(symbols=symbols, positions=p) for p in path]


def run_geodesic_neb(
    reactant: Atoms, product: Atoms, evaluator: Evaluator, settings: PathSettings, workdir: str | Path
) -> PathResult:
    """Geodesic path relaxed as a climbing-image NEB (pysisyphus, Cartesian) -> HEI guess + tangent."""
    quiet_pysisyphus()
    from pysisyphus.cos.NEB import NEB
    from pysisyphus.optimizers.LBFGS import LBFGS

    t0 = time.perf_counter()
    with stage_folder(workdir) as folder:
        try:
            images = geodesic_images(reactant, product, settings.max_nodes + 2, settings.seed)
        except Exception as exc:  # the interpolator raises plain errors on odd inputs
            return failed_path(stopped("geodesic interpolation failed", exc), t0, method="geodesic")
        write(folder / "geodesic_path.xyz", images)
        try:  # the unrelaxed path's energies: the fallback when the NEB diverges
            geodesic_energies = np.array([evaluator.gradient(im.numbers, im.positions)["energy"] for im in images])
        except Exception as exc:
            return failed_path(stopped("the geodesic path cannot be evaluated", exc), t0, method="geodesic")
        geoms = [to_geometry(im, pysis_calculator(evaluator)) for im in images]
        neb = NEB(geoms, climb=True, climb_rms=settings.climb_rms)
        opt = LBFGS(
            neb,
            max_cycles=settings.neb_max_cycles,
            max_step=settings.max_step,
            thresh=settings.convergence,
            out_dir=str(folder),
            dump=False,
            check_coord_diffs=False,
            align=True,
        )
        try:
            opt.run()
        except Exception as exc:
            why = stopped("NEB failed", exc)
            return _guess_from_images(images, geodesic_energies, folder, t0, why, n_cycles=opt.cur_cycle)
        result = _guess_from_chain(neb, opt, folder, t0, "geodesic", settings)
        # a CI-NEB that ran its images into each other (barrier far above the unrelaxed path's) is worse
        # than no NEB: take the geodesic path's highest image instead
        if result.success and max(result.energies) > geodesic_energies.max() + NEB_WORSE_EV:
            why = f"the NEB barrier ({max(result.energies) - result.energies[0]:.2f} eV) is above the geodesic path's"
            return _guess_from_images(images, geodesic_energies, folder, t0, why, n_cycles=opt.cur_cycle)
        return result


#: a relaxed CI-NEB whose highest image lies this much (eV) above the unrelaxed geodesic path's diverged
NEB_WORSE_EV = 0.5


def _guess_from_images(
    images: list[Atoms], energies: np.ndarray, folder: Path, t0: float, why: str, n_cycles: int = 0
) -> PathResult:
    """The TS guess from a path that was not relaxed: its highest interior image, the tangent from the
    images beside it, the curvature from the three energies (what Sella's route starts from)."""
    hei = int(np.argmax(energies))
    result = PathResult(False, False, True, int(n_cycles), "", energies=energies.tolist(), method="geodesic")
    result.path, result.path_file = images, folder / "geodesic_path.xyz"
    result.wall_time_s = time.perf_counter() - t0
    if hei in (0, len(energies) - 1):
        result.message = f"{why}; the geodesic path's highest image is an endpoint: no barrier"
        return result
    cart = np.array([im.positions for im in images])
    tangent = cart[hei + 1] - cart[hei - 1]
    result.success = True
    result.guess = images[hei].copy()
    result.tangent = tangent / np.linalg.norm(tangent)
    result.hei_index = float(hei)
    result.curvature = path_curvature(energies, cart.reshape(len(images), -1), hei)
    result.message = f"{why}; TS guess from the geodesic path's highest image"
    write(folder / "ts_guess.xyz", result.guess)
    return result


def _guess_from_chain(chain, opt, folder: Path, t0: float, method: str, settings: PathSettings) -> PathResult:
    energies = np.array(chain.energy, dtype=np.float64) * HARTREE_TO_EV
    path = [to_atoms(img.atoms, img.cart_coords) for img in chain.images]
    write(folder / "path.xyz", path)
    result = PathResult(
        False,
        bool(opt.is_converged),
        True,
        int(opt.cur_cycle) + 1,
        "",
        energies=energies.tolist(),
        path=path,
        method=method,
        path_file=folder / "path.xyz",
    )
    hei = int(np.argmax(energies))
    if hei in (0, len(energies) - 1):
        result.message = "the highest-energy image is an endpoint: no barrier between reactant and product"
    else:
        guess, tangent, index = _splined_guess(chain, energies, hei)
        cart = np.array([img.cart_coords for img in chain.images]) * BOHR_TO_ANGSTROM
        result.success = True
        result.guess = to_atoms(chain.images[0].atoms, guess)
        result.tangent = tangent.reshape(-1, 3)
        result.hei_index = index
        result.curvature = path_curvature(energies, cart, hei)
        result.message = f"TS guess from the splined highest-energy image ({method})"
        write(folder / "ts_guess.xyz", result.guess)
    result.wall_time_s = time.perf_counter() - t0
    return result


def run_path(
    reactant: Atoms, product: Atoms, evaluator: Evaluator, settings: PathSettings, workdir: str | Path
) -> PathResult:
    """The path stage: GSM, geodesic CI-NEB, or ``auto`` (GSM unless its start collides or it fails)."""
    if settings.method not in ("gsm", "geodesic", "auto"):
        raise ValueError(f"path method must be gsm, geodesic or auto, got {settings.method!r}")
    workdir = Path(workdir)
    if settings.method == "geodesic":
        return run_geodesic_neb(reactant, product, evaluator, settings, workdir)
    if settings.method == "auto":
        closest = straight_line_min_distance(reactant, product)
        if closest < settings.collision_distance:
            result = run_geodesic_neb(reactant, product, evaluator, settings, workdir / "geodesic")
            result.message += f" (a straight line brings atoms {closest:.2f} A together)"
            return result
    result = run_gsm(reactant, product, evaluator, settings, workdir / "gsm" if settings.method == "auto" else workdir)
    if settings.method == "auto" and not result.success:
        first = result.message
        result = run_geodesic_neb(reactant, product, evaluator, settings, workdir / "geodesic")
        result.message += f" (after the growing string: {first})"
    return result
