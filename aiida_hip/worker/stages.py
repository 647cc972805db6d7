"""One function per pipeline stage: a :class:`ReactionInput` in, a plain-JSON result (+ arrays) out.

The chemistry is in :mod:`aiida_hip.pipeline`; here the stage is only called and its result turned
into the worker's output format. Every result has an ``outcome`` (see :data:`io.OUTCOMES`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import numpy as np

from .io import ReactionInput, WorkerInputError, atoms_to_dict


@dataclasses.dataclass
class StageOutput:
    outcome: str
    message: str
    summary: dict = dataclasses.field(default_factory=dict)
    structures: dict[str, dict] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    trajectories: dict[str, list[dict]] = dataclasses.field(default_factory=dict)


def build_settings(cls, data: dict | None, where: str):
    """A (possibly nested) settings dataclass from a mapping; unknown keys are a clear input error."""
    data = dict(data or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise WorkerInputError(f"unknown {where} setting(s) {unknown}; valid: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in list(data.items()):
        if dataclasses.is_dataclass(hints.get(key)) and isinstance(value, dict):
            data[key] = build_settings(hints[key], value, f"{where}.{key}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise WorkerInputError(f"invalid {where} settings: {exc}") from exc


def _route(settings: dict) -> str:
    route = settings.get("route", "pysisyphus")
    if route not in ("pysisyphus", "sella"):
        raise WorkerInputError(f"route must be 'pysisyphus' or 'sella' for a single stage, got {route!r}")
    return route


def _freq_arrays(freq) -> dict[str, np.ndarray]:
    return {"hessian": freq.hessian, "frequencies": np.asarray(freq.frequencies_cm1), "modes": freq.modes}


def _add_frequencies(out: StageOutput, atoms, evaluator, settings: dict, expected: str) -> StageOutput:
    """Frequencies after an optimisation (setting ``freq``, default on); a wrong imaginary count is the outcome.

    ``freq_hessian``: which Hessian judges the stationary point: the level's (default), ``exact``
    (the true second derivative of the level's surface: autograd for HIP, finite differences for
    xTB) or any Hessian mode by name.
    """
    from ..pipeline import run_freq

    if not settings.get("freq", True):
        return out
    mode = settings.get("freq_hessian")
    if mode == "exact":
        mode = evaluator.level.exact_hessian
    freq = run_freq(
        atoms, evaluator, expected, hessian=mode, imaginary_threshold=settings.get("imaginary_threshold", 20.0)
    )
    out.summary["freq"] = freq.summary()
    out.arrays.update(_freq_arrays(freq))
    if not freq.ok:
        want = 1 if expected == "ts" else 0
        where = "the converged TS" if expected == "ts" else "the optimised minimum"
        out.outcome = "wrong_imaginary_count"
        out.message = f"{freq.n_imaginary} imaginary mode(s) at {where}, expected {want}"
    return out


def run_opt_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """RFO minimisation, then (``freq``, default on) frequencies at the minimum."""
    from ..pipeline import OptSettings, run_opt, same_molecule

    _check_keys(settings, {"opt", "freq", "freq_hessian", "imaginary_threshold"}, "opt stage")
    opt_settings = build_settings(OptSettings, settings.get("opt"), "opt")
    atoms = reaction.atoms("structure")
    opt = run_opt(atoms, evaluator, opt_settings, workdir / "opt")
    out = StageOutput("ok", opt.message, {"opt": opt.summary()}, {"structure": atoms_to_dict(opt.atoms)})
    out.summary["energy_ev"] = opt.energy_ev
    #: a minimisation that changed the bonds went to another molecule: callers keep the input then
    out.summary["same_molecule"] = same_molecule(opt.atoms, atoms)
    if not opt.converged:
        out.outcome = "not_converged"
        return out
    return _add_frequencies(out, opt.atoms, evaluator, settings, "minimum")


def run_path_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """Growing string / geodesic CI-NEB (route ``pysisyphus``) or a geodesic guess (route ``sella``)."""
    from ..pipeline import GSMSettings, check_reaction, run_path
    from ..pipeline.sella_route import geodesic_guess

    _check_keys(settings, {"route", "gsm"}, "path stage")
    route = _route(settings)
    gsm = build_settings(GSMSettings, settings.get("gsm"), "gsm")
    reactant, product = reaction.atoms("reactant"), reaction.atoms("product")
    _checked(check_reaction, reactant, product)
    if route == "pysisyphus":
        path = run_path(reactant, product, evaluator, gsm, workdir / "path")
    else:
        path = geodesic_guess(reactant, product, evaluator, gsm, workdir / "path_sella")
    summary = path.summary() | {"route": route, "curvature": path.curvature}
    out = StageOutput("ok" if path.success else "path_failed", path.message, summary)
    if path.path:
        out.trajectories["path"] = [atoms_to_dict(a) for a in path.path]
        out.arrays["path_energies"] = np.asarray(path.energies, dtype=float)
    if path.success:
        out.structures["ts_guess"] = atoms_to_dict(path.guess)
        out.arrays["tangent"] = np.asarray(path.tangent, dtype=float)
    return out


def run_tsopt_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """RS-P-RFO (or Sella) from the TS guess, then frequencies: a TS has exactly one imaginary mode."""
    from ..pipeline import TSOptSettings, run_tsopt
    from ..pipeline.sella_route import SellaSettings, run_sella_tsopt

    _check_keys(settings, {"route", "tsopt", "sella", "freq", "freq_hessian", "imaginary_threshold"}, "tsopt stage")
    route = _route(settings)
    tsopt = build_settings(TSOptSettings, settings.get("tsopt"), "tsopt")
    guess = reaction.atoms("ts_guess")
    tangent = reaction.array("tangent", (len(guess), 3))
    if route == "pysisyphus":
        if tangent is None:
            raise WorkerInputError(f"reaction {reaction.name!r}: RS-P-RFO needs the path tangent (array 'tangent')")
        curvature = reaction.parameters.get("curvature")
        ts = run_tsopt(guess, tangent, evaluator, tsopt, workdir / "tsopt", curvature=curvature)
    else:
        sella = build_settings(SellaSettings, settings.get("sella"), "sella")
        ts = run_sella_tsopt(guess, evaluator, tsopt, workdir / "tsopt_sella", sella)
    out = StageOutput("ok", ts.message, {"tsopt": ts.summary() | {"route": route}})
    if ts.ts is not None:
        out.structures["ts"] = atoms_to_dict(ts.ts)
    out.summary["energy_ev"] = ts.energy_ev
    if not ts.converged:
        out.outcome = "fragmented" if ts.fragmented else "not_converged"
        return out
    return _add_frequencies(out, ts.ts, evaluator, settings, "ts")


def run_freq_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """Eckart-projected frequencies of one structure, checked against what it should be."""
    from ..pipeline import run_freq

    _check_keys(settings, {"expected", "imaginary_threshold", "hessian"}, "freq stage")
    expected = settings.get("expected", "ts")
    if expected not in ("ts", "minimum"):
        raise WorkerInputError(f"freq 'expected' must be 'ts' or 'minimum', got {expected!r}")
    atoms = reaction.atoms("structure")
    freq = run_freq(
        atoms,
        evaluator,
        expected,
        hessian=settings.get("hessian"),
        imaginary_threshold=settings.get("imaginary_threshold", 20.0),
        workdir=workdir / "freq",
    )
    want = 1 if expected == "ts" else 0
    message = f"{freq.n_imaginary} imaginary mode(s) ({freq.classification})"
    out = StageOutput("ok" if freq.ok else "wrong_imaginary_count", message, {"freq": freq.summary()})
    if not freq.ok:
        out.message += f", expected {want}"
    out.summary["energy_ev"] = freq.energy_ev
    out.arrays.update(_freq_arrays(freq))
    return out


def run_irc_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """IRC both ways from the TS (its Hessian if given), ends minimised, compared with reactant/product."""
    from ..pipeline import IRCSettings, compare_endpoints, run_irc
    from ..pipeline.sella_route import run_sella_irc

    _check_keys(settings, {"route", "irc"}, "irc stage")
    route = _route(settings)
    irc_settings = build_settings(IRCSettings, settings.get("irc"), "irc")
    ts = reaction.atoms("ts")
    n3 = 3 * len(ts)
    hessian = reaction.array("hessian", (n3, n3))
    if hessian is None:
        mode = evaluator.level.hessian if evaluator.level.hessian != "none" else evaluator.level.exact_hessian
        hessian = evaluator.hessian(ts.numbers, ts.positions, mode=mode)
    runner = run_irc if route == "pysisyphus" else run_sella_irc
    irc = runner(ts, hessian, evaluator, irc_settings, workdir / ("irc" if route == "pysisyphus" else "irc_sella"))
    out = StageOutput("ok", irc.message, {"irc": irc.summary() | {"route": route}})
    if irc.trajectory:
        out.trajectories["irc"] = [atoms_to_dict(a) for a in irc.trajectory]
    if irc.energies_ev:
        out.arrays["irc_end_energies"] = np.asarray(irc.energies_ev, dtype=float)
    if not irc.completed:
        out.outcome = "irc_incomplete"
        return out
    out.structures["forward_end"] = atoms_to_dict(irc.forward_end)
    out.structures["backward_end"] = atoms_to_dict(irc.backward_end)
    for role, opt in (("forward_end", irc.forward_opt), ("backward_end", irc.backward_opt)):
        if opt is not None:
            out.summary[f"{role}_energy_ev"] = opt.energy_ev
    reactant, product = reaction.atoms("reactant", False), reaction.atoms("product", False)
    if reactant is not None and product is not None:
        check = compare_endpoints(reactant, product, irc.forward_end, irc.backward_end)
        out.summary["endpoints"] = check.summary()
        out.message = check.message
        if check.verdict == "failed":
            out.outcome = "irc_failed"
        elif not check.intended:
            out.outcome = "irc_unintended"
    return out


_TS_SEARCH_OUTCOMES = {
    "success": "ok",
    "gsm_failed": "path_failed",
    "tsopt_not_converged": "not_converged",
    "wrong_imaginary_count": "wrong_imaginary_count",
    "irc_failed": "irc_incomplete",
    "irc_unintended": "irc_unintended",
}


def run_ts_search_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """The whole chain for one reaction in one go (for jobs that carry many reactions)."""
    from ..pipeline import TSSearchSettings, ts_search

    search_settings = build_settings(TSSearchSettings, settings, "ts_search")
    reactant, product = reaction.atoms("reactant"), reaction.atoms("product")
    result = _checked(ts_search, reactant, product, workdir, evaluator.level, search_settings, evaluator=evaluator)
    out = StageOutput(_TS_SEARCH_OUTCOMES.get(result.status, "error"), result.message, result.to_dict())
    if result.ts is not None:
        out.structures["ts"] = atoms_to_dict(result.ts)
    return out


#: the seed's DFT check of a TS: RMS force below 2e-3 Hartree/Bohr
DFT_FORCE_RMS_MAX = 2e-3


def run_dft_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """DFT (PySCF) verification of one geometry: analytic Hessian, imaginary-mode count, RMS force."""
    from ..chem.reference import DFTReference, ReferenceError
    from ..chem.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    from ..chem.vibrations import analyse

    allowed = {"functional", "basis", "conv_tol", "max_memory_mb", "expected", "force_rms_max", "imaginary_threshold"}
    _check_keys(settings, allowed, "dft stage")
    expected = settings.get("expected", "ts")
    if expected not in ("ts", "minimum"):
        raise WorkerInputError(f"dft 'expected' must be 'ts' or 'minimum', got {expected!r}")
    options = {k: settings[k] for k in ("functional", "basis", "conv_tol", "max_memory_mb") if k in settings}
    level = reaction.parameters.get("level", {})
    reference = DFTReference(charge=level.get("charge", 0), multiplicity=level.get("multiplicity"), **options)
    atoms = reaction.atoms("structure")
    try:
        out = reference.predict(atoms.numbers, atoms.positions, hessian="analytic", name=reaction.name)
    except ReferenceError as exc:
        return StageOutput("not_converged", str(exc), {"method": reference.name, "version": reference.version})
    vib = analyse(
        atoms.numbers, atoms.positions, out["hessian"], imaginary_threshold=settings.get("imaginary_threshold", 20.0)
    )
    force_rms = float(np.sqrt(np.mean(out["forces"] ** 2))) / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    limit = settings.get("force_rms_max", DFT_FORCE_RMS_MAX)
    want = 1 if expected == "ts" else 0
    summary = {
        "method": reference.name,
        "version": reference.version,
        "energy_ev": out["energy"],
        "force_rms_ha_per_bohr": force_rms,
        "force_rms_max_ha_per_bohr": limit,
        "n_imaginary": vib.n_imaginary,
        "imaginary_frequency_cm1": float(vib.frequencies[0]) if vib.n_imaginary else None,
        "lowest_frequencies_cm1": [round(float(f), 2) for f in vib.frequencies[:6]],
        "expected": expected,
    }
    summary["verified"] = vib.n_imaginary == want and force_rms <= limit
    arrays = {"hessian": out["hessian"], "frequencies": vib.frequencies, "modes": vib.modes}
    if vib.n_imaginary != want:
        return StageOutput(
            "wrong_imaginary_count",
            f"{vib.n_imaginary} imaginary modes at {reference.name}, expected {want}",
            summary,
            arrays=arrays,
        )
    if force_rms > limit:
        message = f"RMS force {force_rms:.2e} Ha/Bohr at {reference.name} is above {limit:.0e}: not a stationary point"
        return StageOutput("not_stationary", message, summary, arrays=arrays)
    return StageOutput("ok", f"verified at {reference.name}", summary, arrays=arrays)


STAGE_FUNCTIONS = {
    "opt": run_opt_stage,
    "path": run_path_stage,
    "tsopt": run_tsopt_stage,
    "freq": run_freq_stage,
    "irc": run_irc_stage,
    "ts_search": run_ts_search_stage,
    "dft": run_dft_stage,
}


def _check_keys(settings: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise WorkerInputError(f"unknown {where} setting(s) {unknown}; valid: {sorted(allowed)}")


def _checked(func, *args: Any, **kwargs: Any):
    """Turn the pipeline's input errors into worker input errors (a result, not a crash)."""
    from ..pipeline import ReactionInputError

    try:
        return func(*args, **kwargs)
    except ReactionInputError as exc:
        raise WorkerInputError(str(exc)) from exc
