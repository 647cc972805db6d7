"""One reaction end to end: endpoints -> path -> TS optimisation -> frequencies -> IRC -> endpoint check.

The route is an object (:mod:`.routes`: path, TS optimisation and IRC steps); ``auto`` is a list of
routes (Sella, then pysisyphus where Sella did not verify the TS: ``common.types.AUTO_ORDER``).

Every stage writes its own folder under ``out_dir``; the result says which stage stopped the search
and why, so a failed reaction is a result, not an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from ..chem.reference import ReferenceError
from ..chem.thermo import reaction_thermochemistry
from ..chem.vibrations import IMAGINARY_THRESHOLD
from ..common.attempts import (
    DEFAULT_BUDGET_FACTOR,
    Attempt,
    AttemptError,
    attempt_plan,
    attempt_record,
    exact_step_cap,
    hessian_use,
    over_budget,
    retry_after,
    skip_reason,
)
from ..common.geometry import aligned_rmsd
from ..common.level import Level
from ..common.types import (
    DEFAULT_VERIFY,
    REFINE_LEVELS,
    VERIFY_METHODS,
    Calculator,
    HessianMode,
    Outcome,
    Route,
    choices,
)
from .calculators import Evaluator, model_provenance
from .conditioning import condition
from .endpoints import same_molecule
from .freq import run_freq
from .inputs import check_elements, check_reaction
from .irc import IRCSettings
from .opt import OptSettings, endpoint_settings, run_opt
from .path import PathSettings
from .qrc import QRCSettings, run_qrc
from .routes import ROUTES, TSRoute, judge_irc
from .sella_route import SellaSettings, guess_of_rank
from .tsopt import TSOptSettings


@dataclass(frozen=True)
class TSSearchSettings:
    optimize_endpoints: bool = True
    endpoint_opt: OptSettings = field(default_factory=endpoint_settings)
    path: PathSettings = field(default_factory=PathSettings)
    tsopt: TSOptSettings = field(default_factory=TSOptSettings)
    irc: IRCSettings = field(default_factory=IRCSettings)
    run_irc: bool = True
    imaginary_threshold: float = IMAGINARY_THRESHOLD
    #: ``pysisyphus`` (path -> RS-P-RFO -> EulerPC), ``sella`` (geodesic -> Sella -> Sella IRC) or
    #: ``auto``: the routes of ``AUTO_ORDER`` in turn until one verifies the TS (its IRC the intended one).
    route: str = Route.AUTO.value
    sella: SellaSettings = field(default_factory=SellaSettings)
    #: which Hessian judges the TS: ``exact`` (the true second derivative of the surface: autograd for HIP,
    #: the reference Hessian for xTB/DFT), as the AiiDA protocols' ``freq_hessian``, or the level's own
    #: (``level``/``None``; an approximate Hessian miscounts imaginary modes too often to be the judge)
    freq_hessian: str | None = "exact"
    #: temperature (K) of the RRHO thermochemistry and Eyring rates of a verified TS (two more Hessians,
    #: of the optimised ends); ``None`` skips it
    temperature: float | None = 298.15
    #: the two-level search (a HIP level only): ``xtb`` or ``dft`` refines the TS found with HIP on that
    #: reference surface (HIP Hessians, conditioned and guarded), judges it with one reference Hessian and
    #: follows the IRC and minimises the ends there; ``None``: the search stays at the level
    refine: str | None = None
    #: where the two-level search takes its path and TS guess: ``reference`` (single points of the path at the
    #: reference level; measured better, README "Hessian policies") or ``hip`` (the model's surface, then a
    #: loose TS pre-optimisation there)
    guess_level: str = "reference"
    #: the TS pre-optimisation on the HIP surface before the refinement
    pre_opt: TSOptSettings = field(default_factory=lambda: TSOptSettings(convergence="loose", max_cycles=60))
    #: the attempts, ``route:guess:hessian`` each (:mod:`aiida_hip.common.attempts`); ``None``: the plan of
    #: ``route``. A TS that fails its frequencies or its verification, or does not converge, ends one attempt.
    attempts: tuple[str, ...] | None = None
    #: the most attempts that run (skipped repeats do not count); ``None``: the whole plan
    max_attempts: int | None = None
    #: no new attempt once the attempts spent this many times the first one's reference cost (``None``: no cap)
    budget_factor: float | None = DEFAULT_BUDGET_FACTOR
    #: how a TS is verified: ``irc`` (the IRC both ways, its ends minimised) or ``qrc`` (both sides of the TS
    #: mode minimised from the judging Hessian: no profile, a fraction of the cost)
    verify: str = DEFAULT_VERIFY
    qrc: QRCSettings = field(default_factory=QRCSettings)
    #: the two-level search minimises its ends Hessian-free on the reference surface, as the Hessian-free
    #: search does (one HIP Hessian at the start moved the ends to other conformers and lost reactions on
    #: held-out sets); ``level`` starts them from the level's Hessian instead
    two_level_ends: str = "none"

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive (K) or None, got {self.temperature!r}")
        if self.route not in choices(Route):
            raise ValueError(f"route must be one of {choices(Route)}, got {self.route!r}")
        if self.freq_hessian not in (None, "level", "exact"):
            raise ValueError(f"freq_hessian must be 'level' or 'exact', got {self.freq_hessian!r}")
        if self.refine not in (None, "none", *REFINE_LEVELS):
            raise ValueError(f"refine must be one of {['none', *REFINE_LEVELS]}, got {self.refine!r}")
        if self.guess_level not in ("hip", "reference"):
            raise ValueError(f"guess_level must be hip or reference, got {self.guess_level!r}")
        if self.verify not in VERIFY_METHODS:
            raise ValueError(f"verify must be one of {list(VERIFY_METHODS)}, got {self.verify!r}")
        if self.two_level_ends not in ("none", "level"):
            raise ValueError(f"two_level_ends must be none or level, got {self.two_level_ends!r}")
        if self.budget_factor is not None and not self.budget_factor > 0:
            raise ValueError(f"budget_factor must be positive or None, got {self.budget_factor}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.attempts is not None:
            object.__setattr__(self, "attempts", tuple(self.attempts))
        try:
            attempt_plan(self.route, self.attempts)
        except AttemptError as exc:
            raise ValueError(str(exc)) from None

    def two_level(self, level: Level) -> bool:
        """A HIP level with a refinement: the two-level search."""
        return self.refine not in (None, "none") and level.calculator == Calculator.HIP

    @classmethod
    def with_convergence(cls, name: str, **kwargs) -> TSSearchSettings:
        """All optimisations (endpoints, TS, IRC ends) at one Gaussian preset."""
        return cls(
            endpoint_opt=endpoint_settings(name),
            tsopt=TSOptSettings(convergence=name),
            irc=IRCSettings(endpoint_opt=endpoint_settings(name, max_cycles=60)),
            **kwargs,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TSSearchResult:
    status: str = Outcome.PATH_FAILED.value
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
    model: dict | None = None
    #: the two-level search: its refinement level, the HIP TS and its RMSD (A) to the refined TS
    refine_level: dict | None = None
    hip_ts_rmsd_a: float | None = None
    #: the cost at the reference level (gradients, Hessians, ``gradient_equivalents`` = gradients + 6N per
    #: Hessian); all zero for a pure HIP search
    reference_cost: dict = field(default_factory=dict)
    #: every attempt of the plan, in order: route, guess, hessian, status, message, its reference cost, and
    #: whether the level's (model) Hessians reached the optimiser (``hessian_free`` when the guard rejected
    #: them before the first step); skipped repeats with their reason
    attempts: list = field(default_factory=list)
    #: the level's approximate (HIP) Hessians steered at least one TS step of this search
    model_hessians_used: bool = False
    ts: Atoms | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "ts"}
        return json.loads(json.dumps(out, default=_jsonable))


def _jsonable(value):
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
    search = _Search(Path(out_dir), evaluator, settings, progress or (lambda stage, message: None))
    search.ends(reactant, product)
    outcome, message = Outcome.PATH_FAILED, "no attempt ran"
    ran = 0
    for attempt in attempt_plan(settings.route, settings.attempts):
        reason = skip_reason(attempt, search.attempts, search.ends_moved)
        if reason is not None:
            search.attempts.append(attempt_record(attempt, len(search.attempts) + 1, reason))
            continue
        if settings.max_attempts is not None and ran >= settings.max_attempts:
            break
        if (reason := over_budget(search.attempts, settings.budget_factor)) is not None:
            search.attempts.append(attempt_record(attempt, len(search.attempts) + 1, reason))
            break
        ran += 1
        outcome, message = search.attempt(attempt)
        if outcome is Outcome.SUCCESS or not retry_after(outcome):
            break
    search.result.attempts = search.attempts
    search.result.stages["attempts"] = search.attempts
    search.result.model_hessians_used = any(a.get("model_hessians_used") for a in search.attempts)
    if outcome is Outcome.SUCCESS and settings.temperature is not None:
        search.thermochemistry()
    return search.finish(outcome, message)


class _Search:
    """The state of one search: its folder, evaluators, result so far, optimised ends and the last TS.

    ``explore`` is the level's evaluator; ``evaluator`` the surface the TS is judged on (the reference
    with HIP Hessians in a two-level search, else the same); ``irc`` follows the IRC on that surface from
    the judging Hessian only.
    """

    def __init__(self, out: Path, evaluator: Evaluator, settings: TSSearchSettings, say) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.settings, self.say = out, settings, say
        self.explore = self.evaluator = self.irc = evaluator
        self.result = TSSearchResult(level=evaluator.level.to_dict(), model=model_provenance(evaluator.level))
        if settings.two_level(evaluator.level):
            refined = evaluator.level.refined(settings.refine)
            self.evaluator = Evaluator(refined, model=evaluator.model)
            self.irc = Evaluator(replace(refined, hessian=HessianMode.NONE.value), counters=self.evaluator.counters)
            self.result.refine_level = refined.to_dict()
        self.ends_evaluator = self.irc if self.two_level and settings.two_level_ends == "none" else self.evaluator
        self.attempts: list[dict] = []
        self.paths: dict = {}
        self.ends_moved = False
        self.t_start = time.perf_counter()
        # shared evaluators count on: remember where this search started
        self.counts0 = {
            id(e): (e.counters.hessians, e.counters.gradients, e.counters.reference_hessians)
            for e in (self.explore, self.evaluator)
        }
        self.ts = self.freq = None

    @property
    def two_level(self) -> bool:
        return self.evaluator is not self.explore

    def _evaluator_for(self, hessian: str) -> Evaluator:
        """The surface's evaluator with the attempt's Hessians (shared counters: one search, one cost)."""
        level = self.evaluator.level
        if hessian == "level":
            return self.evaluator
        mode = HessianMode.NONE.value if hessian == "none" else level.exact_hessian
        if mode == level.hessian:
            return self.evaluator
        key = f"_evaluator_{mode}"
        if not hasattr(self, key):
            setattr(
                self,
                key,
                Evaluator(replace(level, hessian=mode), counters=self.evaluator.counters, model=self.evaluator.model),
            )
        return getattr(self, key)

    def _counts(self, evaluator: Evaluator) -> tuple[int, int, int]:
        """Hessians, gradients and reference Hessians ``evaluator`` computed for this search."""
        h0, g0, r0 = self.counts0[id(evaluator)]
        counters = evaluator.counters
        return counters.hessians - h0, counters.gradients - g0, counters.reference_hessians - r0

    def finish(self, outcome: Outcome, message: str) -> TSSearchResult:
        result = self.result
        result.status, result.message = outcome.value, message
        hessians, gradients, ref_h = self._counts(self.explore)
        ref_g = gradients if Calculator(self.explore.level.calculator).is_reference else 0
        if self.two_level:
            more_h, ref_g, ref_h = self._counts(self.evaluator)
            hessians, gradients = hessians + more_h, gradients + ref_g
        result.n_hessian_evaluations, result.n_gradient_evaluations = hessians, gradients
        n_atoms = len(self.ends_["reactant"][0])
        result.reference_cost = {
            "gradients": ref_g,
            "hessians": ref_h,
            "gradient_equivalents": ref_g + 6 * n_atoms * ref_h,
        }
        result.wall_time_s["total"] = time.perf_counter() - self.t_start
        (self.out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        self.say("done", f"{outcome.value}: {message}")
        return result

    def ends(self, reactant: Atoms, product: Atoms) -> None:
        """Both ends on the judging surface (kept only if their bonds survive), with their energies."""
        write(self.out / "reactant_input.xyz", reactant)
        write(self.out / "product_input.xyz", product)
        self.ends_ = {"reactant": (reactant, None), "product": (product, None)}
        self.given = {"reactant": reactant.copy(), "product": product.copy()}
        if self.settings.optimize_endpoints:
            self.result.stage_reached = "endpoints"
            self.say("endpoints", "optimising reactant and product")
            t0 = time.perf_counter()
            for role, atoms in (("reactant", reactant), ("product", product)):
                opt = run_opt(atoms, self.ends_evaluator, self.settings.endpoint_opt, self.out / "01_endpoints" / role)
                kept = same_molecule(opt.atoms, atoms)
                self.result.stages[f"{role}_opt"] = opt.summary() | {"kept_optimised": kept}
                self.ends_[role] = (opt.atoms, opt.energy_ev) if kept else (atoms, None)
            self.result.wall_time_s["endpoints"] = time.perf_counter() - t0
        for role, (atoms, energy) in self.ends_.items():
            if energy is None:
                self.ends_[role] = (atoms, self.evaluator.gradient(atoms.numbers, atoms.positions)["energy"])
        self.ends_moved = any(
            aligned_rmsd(self.ends_[role][0].positions, self.given[role].positions) > 0.05 for role in self.given
        )

    def _record(self, key: str, stage) -> None:
        self.result.stages[key] = stage.summary()
        self.result.wall_time_s[key] = stage.wall_time_s

    def attempt(self, attempt: Attempt) -> tuple[Outcome, str]:
        """One attempt from path to verification; its record says how it ended and what it cost."""
        result, route = self.result, ROUTES[Route(attempt.route)]
        if self.attempts:  # a new attempt reports only its own findings (the earlier one stays in stages)
            result.ts_found, result.irc_intended, result.n_imaginary = False, False, None
            result.imaginary_frequency_cm1 = result.barrier_forward_ev = result.barrier_reverse_ev = None
            result.n_tsopt_steps = result.hip_ts_rmsd_a = None
            self.ts = self.freq = None
        record = attempt_record(attempt, len(self.attempts) + 1)
        # the first attempt of a route keeps the route's historical stage names; later ones add their index
        first = not any(a.get("route") == attempt.route and not a.get("skipped") for a in self.attempts)
        suffix = route.suffix if first else f"{route.suffix}_a{record['index']}"
        self.attempts.append(record)
        result.route = route.name.value
        cost0 = self._cost()
        self.say("attempt", f"attempt {record['index']}: {attempt.key}")
        try:
            outcome, message = self._path_to_ts(route, attempt, suffix)
            if outcome is Outcome.SUCCESS:
                outcome, message = self._verify(route, suffix)
        except ReferenceError as exc:  # e.g. an SCF that fails at a geometry the search reached
            outcome, message = Outcome.ERROR, f"{result.stage_reached}: {exc}"
            self.say(result.stage_reached, message)
        record |= {
            "status": outcome.value,
            "message": message[:300],
            "stage_reached": result.stage_reached,
            "n_tsopt_steps": result.n_tsopt_steps,
            "barrier_forward_ev": result.barrier_forward_ev,
            "reference_gradient_equivalents": self._cost() - cost0,
        }
        return outcome, message

    def _cost(self) -> int:
        """Reference gradient equivalents spent so far (gradients + 6N per reference Hessian)."""
        if not Calculator(self.evaluator.level.calculator).is_reference:
            return 0
        _, gradients, hessians = self._counts(self.evaluator)
        return gradients + 6 * len(self.given["reactant"]) * hessians

    def _path(self, route: TSRoute, attempt: Attempt, suffix: str, guesser: Evaluator):
        """The attempt's path, computed once per (route, ends, rank) and reused by later attempts."""
        ends = self.given if attempt.guess == "given" else {k: v[0] for k, v in self.ends_.items()}
        rank, key = attempt.guess_rank, attempt.path_key
        highest = self.paths.get(replace(attempt, guess="highest").path_key) if rank else None
        if key not in self.paths and highest is not None and highest.method == "geodesic" and highest.path:
            self.paths[key] = guess_of_rank(highest, rank)  # the same images: no new single points
        if key not in self.paths:
            settings = replace(self.settings.path, guess_rank=rank)
            self.say("path", f"reaction path ({route.name}: {route.path_method(settings)}, {attempt.guess} guess)")
            path = route.path(ends["reactant"], ends["product"], guesser, settings, self.out / f"02_path{suffix}")
            self._record(f"path{suffix}", path)
            if path.path_file is not None:
                self.result.files[f"path{suffix}"] = str(path.path_file.resolve().relative_to(self.out.resolve()))
            self.paths[key] = path
        return self.paths[key]

    def _path_to_ts(self, route: TSRoute, attempt: Attempt, suffix: str) -> tuple[Outcome, str]:
        """Path -> (HIP pre-optimisation ->) TS optimisation -> frequencies: a first-order saddle, or the
        stage that failed."""
        settings, result, record = self.settings, self.result, self.attempts[-1]
        result.stage_reached = "path"
        guesser = self.evaluator if settings.guess_level == "reference" else self.explore
        path = self._path(route, attempt, suffix, guesser)
        if path.outcome is not Outcome.SUCCESS:
            self.say("path", path.message)
            return path.outcome, path.message
        self.say("path", f"{path.method}: TS guess at node {path.hei_index:.2f} after {path.n_cycles} cycles")
        pre_opt = self.two_level and guesser is self.explore and attempt.hessian == "level"
        start = self._pre_opt(route, path, suffix) if pre_opt else path.guess
        result.stage_reached = "tsopt"
        evaluator = self._evaluator_for(attempt.hessian)
        tsopt, sella = settings.tsopt, settings.sella
        cap = exact_step_cap(self.attempts, settings.budget_factor, len(start)) if attempt.hessian == "exact" else None
        if cap is not None:  # the budget bounds what an exact-Hessian attempt may spend
            tsopt = replace(tsopt, max_cycles=min(tsopt.max_cycles, cap))
            sella = replace(sella, max_steps=min(sella.max_steps, cap))
            record["max_steps"] = cap
        self.say("tsopt", f"{route.optimizer} with {evaluator.level.hessian} Hessians")
        ts = route.tsopt(start, path.tangent, path.curvature, evaluator, tsopt, sella, self.out / f"03_tsopt{suffix}")
        self._record(f"tsopt{suffix}", ts)
        record |= hessian_use(evaluator.level, ts.hessian_feed)
        result.n_tsopt_steps, result.ts, self.ts = ts.n_cycles, ts.ts, ts
        if ts.ts is not None:
            write(self.out / "ts.xyz", ts.ts)
            result.files["ts"] = "ts.xyz"
            if pre_opt:
                result.hip_ts_rmsd_a = aligned_rmsd(ts.ts.positions, start.positions)
        if ts.outcome is not Outcome.SUCCESS:
            self.say("tsopt", ts.message)
            return ts.outcome, ts.message
        self.say("tsopt", f"converged in {ts.n_cycles} steps")
        return self._freq(route, suffix)

    def _pre_opt(self, route: TSRoute, path, suffix: str) -> Atoms:
        """The two-level search's TS pre-optimisation on the HIP surface; its last geometry starts the
        refinement whether or not it converged (the HIP surface only explores)."""
        self.result.stage_reached = "tsopt_hip"
        self.say("tsopt_hip", f"{route.optimizer} on the HIP surface (pre-optimisation)")
        pre = route.tsopt(
            path.guess,
            path.tangent,
            path.curvature,
            self.explore,
            self.settings.pre_opt,
            self.settings.sella,
            self.out / f"03_tsopt_hip{suffix}",
        )
        self._record(f"tsopt_hip{suffix}", pre)
        if pre.ts is None:
            return path.guess
        write(self.out / "ts_hip.xyz", pre.ts)
        self.result.files["ts_hip"] = "ts_hip.xyz"
        return pre.ts

    def _freq(self, route: TSRoute, suffix: str) -> tuple[Outcome, str]:
        """The TS judged by the Hessian of ``freq_hessian`` (two-level: one reference Hessian)."""
        settings, result = self.settings, self.result
        result.stage_reached = "freq"
        choice = "exact" if self.two_level else settings.freq_hessian
        freq = run_freq(
            self.ts.ts,
            self.evaluator,
            "ts",
            hessian=self.evaluator.level.judging_hessian(choice),
            imaginary_threshold=settings.imaginary_threshold,
            workdir=self.out / f"04_freq{suffix}",
        )
        self._record(f"freq{suffix}", freq)
        self.freq = freq
        result.n_imaginary, result.imaginary_frequency_cm1 = freq.n_imaginary, freq.imaginary_frequency_cm1
        result.barrier_forward_ev = freq.energy_ev - self.ends_["reactant"][1]
        result.barrier_reverse_ev = freq.energy_ev - self.ends_["product"][1]
        self.say("freq", f"{freq.n_imaginary} imaginary mode(s), {freq.frequencies_cm1[0]:.0f} cm^-1 lowest")
        if freq.outcome is not Outcome.SUCCESS:
            return freq.outcome, freq.verdict
        result.ts_found = True
        return Outcome.SUCCESS, "TS found and characterised"

    def _verify(self, route: TSRoute, suffix: str) -> tuple[Outcome, str]:
        """IRC (or QRC) both ways from the frequency Hessian (conditioned if it is an approximate one), then
        the endpoint check."""
        if not self.settings.run_irc:
            return Outcome.SUCCESS, "TS found and characterised (IRC not requested)"
        result, qrc = self.result, self.settings.verify == "qrc"
        result.stage_reached = "irc"
        self.say("irc", "minimising both sides of the TS mode (QRC)" if qrc else "following the IRC both ways")
        hessian = self.freq.hessian
        if self.freq.hessian_source != self.irc.level.exact_hessian:
            hessian, _ = condition(hessian, self.ts.ts.positions, "ts", self.settings.tsopt.conditioning)
        workdir = self.out / f"05_irc{suffix}"
        if qrc:
            irc = run_qrc(self.ts.ts, hessian, self.irc, self.settings.qrc, workdir)
        else:
            irc = route.irc(self.ts.ts, hessian, self.irc, self.settings.irc, workdir)
        self._record(f"irc{suffix}", irc)
        if irc.trajectory:
            result.files["irc"] = f"05_irc{suffix}/{'qrc' if qrc else 'irc'}.xyz"
        outcome, message, check = judge_irc(irc, self.ends_["reactant"][0], self.ends_["product"][0])
        if check is not None:
            result.stages[f"endpoints_check{suffix}"] = check.summary()
            result.irc_intended = check.intended
        if outcome is Outcome.SUCCESS:
            message = f"TS verified: {message}"
        return outcome, message

    def thermochemistry(self) -> None:
        self.say("thermochemistry", f"RRHO at {self.settings.temperature:g} K")
        t0 = time.perf_counter()
        self.result.thermochemistry = _thermochemistry(
            self.ends_, self.ts.ts, self.freq, self.evaluator, self.settings, self.out / "06_thermo"
        )
        self.result.wall_time_s["thermochemistry"] = time.perf_counter() - t0


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
