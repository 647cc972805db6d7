"""One reaction end to end: endpoints -> path -> TS optimisation -> frequencies -> IRC -> endpoint check.

Two routes share the stages' result types: pysisyphus (GSM or geodesic CI-NEB -> RS-P-RFO -> EulerPC)
and Sella (geodesic guess -> Sella -> Sella IRC); ``auto`` runs Sella first and pysisyphus when Sella
fails (``AUTO_ORDER``: on the same success count, Sella first is the cheaper order; README, "Routes").

Every stage writes its own folder under ``out_dir``; the result says which stage stopped the search
and why, so a failed reaction is a result, not an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ase import Atoms
from ase.io import write

from ..chem.vibrations import IMAGINARY_THRESHOLD
from .calculators import Evaluator, Level
from .endpoints import compare_endpoints, same_molecule
from .freq import run_freq
from .gsm import GSMSettings, run_path
from .inputs import check_elements, check_reaction
from .irc import IRCSettings, run_irc
from .opt import OptSettings, run_opt
from .sella_route import SellaSettings, geodesic_guess, run_sella_irc, run_sella_tsopt
from .tsopt import TSOptSettings, run_tsopt

#: the order in which ``route="auto"`` tries the routes (benchmarks/results/ts_search_routes.md)
AUTO_ORDER = ("sella", "pysisyphus")

STATUSES = ("success", "gsm_failed", "tsopt_not_converged", "wrong_imaginary_count", "irc_failed", "irc_unintended")


@dataclass(frozen=True)
class TSSearchSettings:
    optimize_endpoints: bool = True
    endpoint_opt: OptSettings = field(default_factory=OptSettings)
    gsm: GSMSettings = field(default_factory=GSMSettings)
    tsopt: TSOptSettings = field(default_factory=TSOptSettings)
    irc: IRCSettings = field(default_factory=IRCSettings)
    run_irc: bool = True
    imaginary_threshold: float = IMAGINARY_THRESHOLD
    #: ``pysisyphus`` (path -> RS-P-RFO -> EulerPC), ``sella`` (geodesic -> Sella -> Sella IRC) or
    #: ``auto``: the routes of ``AUTO_ORDER`` in turn until one verifies the TS (its IRC the intended one).
    route: str = "auto"
    sella: SellaSettings = field(default_factory=SellaSettings)
    #: which Hessian judges the TS: the level's (``None``) or ``exact`` (autograd for HIP, finite
    #: differences for xTB), as the AiiDA protocols' ``freq_hessian``
    freq_hessian: str | None = None
    #: temperature (K) of the RRHO thermochemistry and Eyring rates of a verified TS (two more Hessians,
    #: of the optimised ends); ``None`` skips it
    temperature: float | None = 298.15

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive (K) or None, got {self.temperature!r}")
        if self.route not in ("pysisyphus", "sella", "auto"):
            raise ValueError(f"route must be pysisyphus, sella or auto, got {self.route!r}")
        if self.freq_hessian not in (None, "level", "exact"):
            raise ValueError(f"freq_hessian must be 'level' or 'exact', got {self.freq_hessian!r}")

    @classmethod
    def with_convergence(cls, name: str, **kwargs) -> TSSearchSettings:
        """All optimisations (endpoints, TS, IRC ends) at one Gaussian preset."""
        return cls(
            endpoint_opt=OptSettings(convergence=name),
            tsopt=TSOptSettings(convergence=name),
            irc=IRCSettings(endpoint_opt=OptSettings(convergence=name, max_cycles=60)),
            **kwargs,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TSSearchResult:
    status: str = "gsm_failed"
    message: str = ""
    stage_reached: str = ""
    route: str = ""
    ts_found: bool = False
    n_imaginary: int | None = None
    imaginary_frequency_cm1: float | None = None
    irc_intended: bool = False
    barrier_forward_ev: float | None = None
    barrier_reverse_ev: float | None = None
    n_tsopt_steps: int | None = None
    n_hessian_evaluations: int = 0
    n_gradient_evaluations: int = 0
    wall_time_s: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    level: dict = field(default_factory=dict)
    thermochemistry: dict = field(default_factory=dict)
    ts: Atoms | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "ts"}
        return json.loads(json.dumps(out, default=_jsonable))


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Atoms):
        return None
    return str(value)


def ts_search(
    reactant: Atoms,
    product: Atoms,
    out_dir: str | Path,
    level: Level | None = None,
    settings: TSSearchSettings | None = None,
    progress: Callable[[str, str], None] | None = None,
    evaluator: Evaluator | None = None,
) -> TSSearchResult:
    """Search, verify and characterise the TS of reactant -> product; writes ``out_dir/result.json``."""
    check_reaction(reactant, product)
    level = level or Level()
    settings = settings or TSSearchSettings()
    evaluator = evaluator or Evaluator(level)
    check_elements(reactant, evaluator, "reactant")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda stage, message: None)
    result = TSSearchResult(level=level.to_dict())
    t_start = time.perf_counter()
    hessians0, gradients0 = evaluator.counters.hessians, evaluator.counters.gradients  # a shared evaluator counts on
    write(out / "reactant_input.xyz", reactant)
    write(out / "product_input.xyz", product)

    def finish(status: str, message: str) -> TSSearchResult:
        result.status, result.message = status, message
        result.n_hessian_evaluations = evaluator.counters.hessians - hessians0
        result.n_gradient_evaluations = evaluator.counters.gradients - gradients0
        result.wall_time_s["total"] = time.perf_counter() - t_start
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        say("done", f"{status}: {message}")
        return result

    # 1. endpoints at this level
    e_reactant = e_product = None
    if settings.optimize_endpoints:
        result.stage_reached = "endpoints"
        say("endpoints", "optimising reactant and product")
        t0 = time.perf_counter()
        ends = {}
        for role, atoms in (("reactant", reactant), ("product", product)):
            opt = run_opt(atoms, evaluator, settings.endpoint_opt, out / "01_endpoints" / role)
            kept = opt.atoms if same_molecule(opt.atoms, atoms) else atoms
            result.stages[f"{role}_opt"] = opt.summary() | {"kept_optimised": kept is opt.atoms}
            ends[role] = (kept, opt.energy_ev if kept is opt.atoms else None)
        (reactant, e_reactant), (product, e_product) = ends["reactant"], ends["product"]
        result.wall_time_s["endpoints"] = time.perf_counter() - t0
    if e_reactant is None:
        e_reactant = evaluator.gradient(reactant.numbers, reactant.positions)["energy"]
    if e_product is None:
        e_product = evaluator.gradient(product.numbers, product.positions)["energy"]

    # 2-4. path -> TS optimisation -> frequencies, on one route or the other
    routes = list(AUTO_ORDER) if settings.route == "auto" else [settings.route]
    status, message, route, ts, freq = "gsm_failed", "", routes[0], None, None
    attempts: list[dict] = []
    for route in routes:
        if attempts:  # a new attempt reports only its own findings (the earlier one stays in stages)
            attempts[-1]["status"] = status
            result.ts_found, result.irc_intended, result.n_imaginary = False, False, None
            result.imaginary_frequency_cm1 = result.barrier_forward_ev = result.barrier_reverse_ev = None
            result.n_tsopt_steps = None
        attempts.append({"route": route})
        suffix = "" if route == "pysisyphus" else "_sella"
        result.stage_reached = "path"
        say("path", f"reaction path ({route}: {'geodesic' if route == 'sella' else settings.gsm.method})")
        if route == "pysisyphus":
            path = run_path(reactant, product, evaluator, settings.gsm, out / "02_path")
        else:
            path = geodesic_guess(reactant, product, evaluator, settings.gsm, out / "02_path_sella")
        result.stages[f"path{suffix}"] = path.summary()
        result.wall_time_s[f"path{suffix}"] = path.wall_time_s
        if path.path_file is not None:
            result.files[f"path{suffix}"] = str(path.path_file.resolve().relative_to(out.resolve()))
        if not path.success:
            status, message = "gsm_failed", path.message
            say("path", message)
            continue
        say("path", f"{path.method}: TS guess at node {path.hei_index:.2f} after {path.n_cycles} cycles")

        result.stage_reached = "tsopt"
        say("tsopt", f"{'RS-P-RFO' if route == 'pysisyphus' else 'Sella'} with {level.hessian} Hessians")
        if route == "pysisyphus":
            ts = run_tsopt(
                path.guess, path.tangent, evaluator, settings.tsopt, out / "03_tsopt", curvature=path.curvature
            )
        else:
            ts = run_sella_tsopt(path.guess, evaluator, settings.tsopt, out / "03_tsopt_sella", settings.sella)
        result.stages[f"tsopt{suffix}"] = ts.summary()
        result.wall_time_s[f"tsopt{suffix}"] = ts.wall_time_s
        result.n_tsopt_steps = ts.n_cycles
        result.ts = ts.ts
        if ts.ts is not None:
            write(out / "ts.xyz", ts.ts)
            result.files["ts"] = "ts.xyz"
        if not ts.converged:
            status, message = "tsopt_not_converged", ts.message
            say("tsopt", message)
            continue
        say("tsopt", f"converged in {ts.n_cycles} steps")

        result.stage_reached = "freq"
        freq = run_freq(
            ts.ts,
            evaluator,
            "ts",
            hessian=evaluator.level.exact_hessian if settings.freq_hessian == "exact" else None,
            imaginary_threshold=settings.imaginary_threshold,
            workdir=out / f"04_freq{suffix}",
        )
        result.stages[f"freq{suffix}"] = freq.summary()
        result.wall_time_s[f"freq{suffix}"] = freq.wall_time_s
        result.n_imaginary = freq.n_imaginary
        result.imaginary_frequency_cm1 = freq.imaginary_frequency_cm1
        result.barrier_forward_ev = freq.energy_ev - e_reactant
        result.barrier_reverse_ev = freq.energy_ev - e_product
        say("freq", f"{freq.n_imaginary} imaginary mode(s), {freq.frequencies_cm1[0]:.0f} cm^-1 lowest")
        if not freq.ok:
            status, message = "wrong_imaginary_count", f"{freq.n_imaginary} imaginary modes at the TS, expected 1"
            continue
        result.ts_found = True
        if not settings.run_irc:
            status, message = "success", "TS found and characterised (IRC not requested)"
            break

        # 5. IRC + endpoint check
        result.stage_reached = "irc"
        say("irc", "following the IRC both ways")
        if route == "pysisyphus":
            irc = run_irc(ts.ts, freq.hessian, evaluator, settings.irc, out / "05_irc")
        else:
            irc = run_sella_irc(ts.ts, freq.hessian, evaluator, settings.irc, out / "05_irc_sella")
        result.stages[f"irc{suffix}"] = irc.summary()
        result.wall_time_s[f"irc{suffix}"] = irc.wall_time_s
        if irc.trajectory:
            result.files["irc"] = f"05_irc{suffix}/irc.xyz"
        if not irc.completed:
            status, message = "irc_failed", irc.message
            continue
        check = compare_endpoints(reactant, product, irc.forward_end, irc.backward_end)
        result.stages[f"endpoints_check{suffix}"] = check.summary()
        result.irc_intended = check.intended
        if check.verdict == "failed":
            status, message = "irc_failed", check.message
            continue
        if not check.intended:
            status, message = "irc_unintended", check.message
            continue
        status, message = "success", f"TS verified: {check.message}"
        break
    result.route = route
    attempts[-1]["status"] = status
    result.stages["attempts"] = attempts
    if status == "success" and settings.temperature is not None:
        say("thermochemistry", f"RRHO at {settings.temperature:g} K")
        t0 = time.perf_counter()
        ends = {"reactant": (reactant, e_reactant), "product": (product, e_product)}
        result.thermochemistry = _thermochemistry(ends, ts.ts, freq, evaluator, settings, out / "06_thermo")
        result.wall_time_s["thermochemistry"] = time.perf_counter() - t0
    return finish(status, message)


def _thermochemistry(
    ends: dict[str, tuple[Atoms, float]],
    ts: Atoms,
    ts_freq,
    evaluator: Evaluator,
    settings: TSSearchSettings,
    out: Path,
) -> dict:
    """RRHO thermochemistry and Eyring rates of a verified TS: frequencies of both ends with the Hessian that
    judged the TS, electronic energies those the barriers use. A failure is reported, never raised: the
    search itself is done and must not be lost."""
    from ..chem.thermo import reaction_thermochemistry

    try:
        species = {"ts": (ts.numbers, ts.positions, ts_freq.frequencies_cm1, ts_freq.energy_ev)}
        n_imaginary = {}
        for role, (atoms, energy) in ends.items():
            freq = run_freq(atoms, evaluator, "minimum", hessian=ts_freq.hessian_source, workdir=out / role)
            species[role] = (atoms.numbers, atoms.positions, freq.frequencies_cm1, energy)
            n_imaginary[role] = freq.n_imaginary
        thermo = reaction_thermochemistry(species, settings.temperature)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    thermo["hessian_source"] = ts_freq.hessian_source
    thermo["ends_n_imaginary"] = n_imaginary  # > 0: an end is not a minimum at this level; its mode is left out
    return thermo
