"""One reaction end to end: endpoints -> GSM -> RS-P-RFO -> frequencies -> IRC -> endpoint check.

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
from .inputs import ReactionInputError, check_reaction
from .irc import IRCSettings, run_irc
from .opt import OptSettings, run_opt
from .tsopt import TSOptSettings, run_tsopt

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
    if level.uses_model:
        supported = set(evaluator.model.config.elements)
        missing = sorted(set(reactant.numbers.tolist()) - supported)
        if missing:
            raise ReactionInputError(
                f"elements {missing} are not supported by the HIP model (it knows {sorted(supported)})"
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda stage, message: None)
    result = TSSearchResult(level=level.to_dict())
    t_start = time.perf_counter()
    write(out / "reactant_input.xyz", reactant)
    write(out / "product_input.xyz", product)

    def finish(status: str, message: str) -> TSSearchResult:
        result.status, result.message = status, message
        result.n_hessian_evaluations = evaluator.counters.hessians
        result.n_gradient_evaluations = evaluator.counters.gradients
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

    # 2. growing string
    result.stage_reached = "path"
    say("path", f"reaction path ({settings.gsm.method})")
    gsm = run_path(reactant, product, evaluator, settings.gsm, out / "02_path")
    result.stages["gsm"] = gsm.summary()
    result.wall_time_s["gsm"] = gsm.wall_time_s
    if gsm.path_file is not None:
        result.files["path"] = str(gsm.path_file.relative_to(out.resolve()))
    if not gsm.success:
        return finish("gsm_failed", gsm.message)
    say("path", f"{gsm.method}: TS guess at node {gsm.hei_index:.2f} after {gsm.n_cycles} cycles")

    # 3. TS optimisation
    result.stage_reached = "tsopt"
    say("tsopt", f"RS-P-RFO with {level.hessian} Hessians")
    ts = run_tsopt(gsm.guess, gsm.tangent, evaluator, settings.tsopt, out / "03_tsopt", curvature=gsm.curvature)
    result.stages["tsopt"] = ts.summary()
    result.wall_time_s["tsopt"] = ts.wall_time_s
    result.n_tsopt_steps = ts.n_cycles
    result.ts = ts.ts
    if ts.ts is not None:
        write(out / "ts.xyz", ts.ts)
        result.files["ts"] = "ts.xyz"
    if not ts.converged:
        return finish("tsopt_not_converged", ts.message)
    say("tsopt", f"converged in {ts.n_cycles} steps")

    # 4. frequencies
    result.stage_reached = "freq"
    freq = run_freq(ts.ts, evaluator, "ts", imaginary_threshold=settings.imaginary_threshold, workdir=out / "04_freq")
    result.stages["freq"] = freq.summary()
    result.wall_time_s["freq"] = freq.wall_time_s
    result.n_imaginary = freq.n_imaginary
    result.imaginary_frequency_cm1 = freq.imaginary_frequency_cm1
    result.barrier_forward_ev = freq.energy_ev - e_reactant
    result.barrier_reverse_ev = freq.energy_ev - e_product
    say("freq", f"{freq.n_imaginary} imaginary mode(s), {freq.frequencies_cm1[0]:.0f} cm^-1 lowest")
    if not freq.ok:
        return finish("wrong_imaginary_count", f"{freq.n_imaginary} imaginary modes at the optimised TS, expected 1")
    result.ts_found = True
    if not settings.run_irc:
        return finish("success", "TS found and characterised (IRC not requested)")

    # 5. IRC + endpoint check
    result.stage_reached = "irc"
    say("irc", "following the IRC both ways")
    irc = run_irc(ts.ts, freq.hessian, evaluator, settings.irc, out / "05_irc")
    result.stages["irc"] = irc.summary()
    result.wall_time_s["irc"] = irc.wall_time_s
    if irc.trajectory:
        result.files["irc"] = "05_irc/irc.xyz"
    if not irc.completed:
        return finish("irc_failed", irc.message)
    check = compare_endpoints(reactant, product, irc.forward_end, irc.backward_end)
    result.stages["endpoints_check"] = check.summary()
    result.irc_intended = check.intended
    if check.verdict == "failed":
        return finish("irc_failed", check.message)
    if not check.intended:
        return finish("irc_unintended", check.message)
    return finish("success", f"TS verified: {check.message}")
