"""One function per pipeline stage: a :class:`ReactionInput` in, a plain-JSON result (+ arrays) out.

The chemistry and its verdicts are in :mod:`aiida_hip.pipeline` (routes, stages, outcomes); here a
stage is only called and its result serialised into the worker's output format. Every result carries
an :class:`~aiida_hip.common.types.Outcome` value.
"""

from __future__ import annotations

import dataclasses
import re
import time
import traceback
import typing
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..common.molecule import ReactionInputError
from ..common.types import AUTO_ORDER, VERIFY_METHODS, HessianMode, Outcome
from ..pipeline import (
    IRCSettings,
    OptSettings,
    PathSettings,
    TSOptSettings,
    TSSearchSettings,
    check_reaction,
    run_freq,
    run_opt,
    same_molecule,
    single_route,
    ts_search,
)
from ..pipeline.dft_check import DFTCheckSettings, run_dft_check
from ..pipeline.inputs import check_elements
from ..pipeline.qrc import QRCSettings, run_qrc
from ..pipeline.routes import judge_irc
from ..pipeline.sella_route import SellaSettings
from .io import ReactionInput, WorkerInput, WorkerInputError, atoms_to_dict


@dataclasses.dataclass
class StageOutput:
    outcome: Outcome
    message: str
    summary: dict = dataclasses.field(default_factory=dict)
    structures: dict[str, dict] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    trajectories: dict[str, list[dict]] = dataclasses.field(default_factory=dict)


def dict_to_atoms(data: dict, role: str) -> Atoms:
    """A structure entry -> ASE ``Atoms`` (no cell, no periodicity), with errors that name ``role``."""
    try:
        symbols, positions = data["symbols"], np.asarray(data["positions"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkerInputError(f"structure {role!r} needs 'symbols' and numeric 'positions' ({exc})") from exc
    if positions.shape != (len(symbols), 3):
        raise WorkerInputError(f"structure {role!r}: {len(symbols)} symbols but positions of shape {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise WorkerInputError(f"structure {role!r} has non-finite coordinates")
    try:
        return Atoms(symbols=symbols, positions=positions)
    except (KeyError, ValueError) as exc:
        raise WorkerInputError(f"structure {role!r} has an unknown element: {exc}") from exc


def reaction_atoms(reaction: ReactionInput, role: str, required: bool = True) -> Atoms | None:
    """The ``role`` structure of ``reaction`` as ASE ``Atoms`` (``None`` when it is absent and not required)."""
    if role not in reaction.structures:
        if required:
            raise WorkerInputError(f"reaction {reaction.name!r}: stage needs a {role!r} structure")
        return None
    return dict_to_atoms(reaction.structures[role], f"{reaction.name}/{role}")


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


#: a single stage runs one route; without a ``route`` setting, the one ``auto`` tries first
DEFAULT_STAGE_ROUTE = AUTO_ORDER[0]


def _route(settings: dict):
    try:
        return single_route(settings.get("route", DEFAULT_STAGE_ROUTE))
    except ReactionInputError as exc:
        raise WorkerInputError(str(exc)) from exc


def _freq_arrays(freq) -> dict[str, np.ndarray]:
    return {"hessian": freq.hessian, "frequencies": np.asarray(freq.frequencies_cm1), "modes": freq.modes}


def _judging_hessian(evaluator, choice: str | None) -> str | None:
    try:
        return evaluator.level.judging_hessian(choice)
    except ValueError as exc:
        raise WorkerInputError(str(exc)) from exc


def _add_frequencies(out: StageOutput, atoms, evaluator, settings: dict, expected: str) -> StageOutput:
    """Frequencies after an optimisation (setting ``freq``, default on); a wrong imaginary count is the outcome.

    ``freq_hessian``: which Hessian judges the stationary point: the level's (default), ``exact``
    (the true second derivative of the level's surface) or any Hessian mode by name.
    """
    if not settings.get("freq", True):
        return out
    mode = _judging_hessian(evaluator, settings.get("freq_hessian"))
    freq = run_freq(
        atoms, evaluator, expected, hessian=mode, imaginary_threshold=settings.get("imaginary_threshold", 20.0)
    )
    out.summary["freq"] = freq.summary()
    out.arrays.update(_freq_arrays(freq))
    if freq.outcome is not Outcome.SUCCESS:
        out.outcome, out.message = freq.outcome, freq.verdict
    return out


def run_opt_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """RFO minimisation, then (``freq``, default on) frequencies at the minimum."""
    _check_keys(settings, {"opt", "freq", "freq_hessian", "imaginary_threshold"}, "opt stage")
    opt_settings = build_settings(OptSettings, settings.get("opt"), "opt")
    atoms = reaction_atoms(reaction, "structure")
    opt = run_opt(atoms, evaluator, opt_settings, workdir / "opt")
    out = StageOutput(opt.outcome, opt.message, {"opt": opt.summary()}, {"structure": atoms_to_dict(opt.atoms)})
    out.summary["energy_ev"] = opt.energy_ev
    #: a minimisation that changed the bonds went to another molecule: callers keep the input then
    out.summary["same_molecule"] = same_molecule(opt.atoms, atoms)
    if opt.outcome is not Outcome.SUCCESS:
        return out
    return _add_frequencies(out, opt.atoms, evaluator, settings, "minimum")


def run_path_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """The route's path step: growing string / geodesic CI-NEB (pysisyphus) or a geodesic guess (Sella)."""
    _check_keys(settings, {"route", "path"}, "path stage")
    route = _route(settings)
    path_settings = build_settings(PathSettings, settings.get("path"), "path")
    reactant, product = reaction_atoms(reaction, "reactant"), reaction_atoms(reaction, "product")
    _checked(check_reaction, reactant, product)
    path = route.path(reactant, product, evaluator, path_settings, workdir / f"path{route.suffix}")
    summary = path.summary() | {"route": route.name.value, "curvature": path.curvature}
    out = StageOutput(path.outcome, path.message, summary)
    if path.path:
        out.trajectories["path"] = [atoms_to_dict(a) for a in path.path]
        out.arrays["path_energies"] = np.asarray(path.energies, dtype=float)
    if path.outcome is Outcome.SUCCESS:
        out.structures["ts_guess"] = atoms_to_dict(path.guess)
        out.arrays["tangent"] = np.asarray(path.tangent, dtype=float)
    return out


def run_tsopt_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """The route's TS optimisation from the guess, then frequencies: a TS has exactly one imaginary mode."""
    _check_keys(settings, {"route", "tsopt", "sella", "freq", "freq_hessian", "imaginary_threshold"}, "tsopt stage")
    route = _route(settings)
    tsopt = build_settings(TSOptSettings, settings.get("tsopt"), "tsopt")
    sella = build_settings(SellaSettings, settings.get("sella"), "sella")
    guess = reaction_atoms(reaction, "ts_guess")
    tangent = reaction.array("tangent", (len(guess), 3))
    curvature = reaction.parameters.get("curvature")
    ts = _checked(route.tsopt, guess, tangent, curvature, evaluator, tsopt, sella, workdir / f"tsopt{route.suffix}")
    out = StageOutput(ts.outcome, ts.message, {"tsopt": ts.summary() | {"route": route.name.value}})
    if ts.ts is not None:
        out.structures["ts"] = atoms_to_dict(ts.ts)
    out.summary["energy_ev"] = ts.energy_ev
    if ts.outcome is not Outcome.SUCCESS:
        return out
    return _add_frequencies(out, ts.ts, evaluator, settings, "ts")


def run_freq_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """Eckart-projected frequencies of one structure, checked against what it should be."""
    _check_keys(settings, {"expected", "imaginary_threshold", "hessian"}, "freq stage")
    expected = settings.get("expected", "ts")
    if expected not in ("ts", "minimum"):
        raise WorkerInputError(f"freq 'expected' must be 'ts' or 'minimum', got {expected!r}")
    freq = run_freq(
        reaction_atoms(reaction, "structure"),
        evaluator,
        expected,
        hessian=_judging_hessian(evaluator, settings.get("hessian")),
        imaginary_threshold=settings.get("imaginary_threshold", 20.0),
        workdir=workdir / "freq",
    )
    message = freq.verdict or f"{freq.n_imaginary} imaginary mode(s) ({freq.classification})"
    out = StageOutput(freq.outcome, message, {"freq": freq.summary()})
    out.summary["energy_ev"] = freq.energy_ev
    out.arrays.update(_freq_arrays(freq))
    return out


def run_irc_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """The route's IRC both ways from the TS (its Hessian if given), or with ``verify='qrc'`` both sides of
    the TS mode minimised, then the endpoint check."""
    _check_keys(settings, {"route", "irc", "verify", "qrc"}, "irc stage")
    route = _route(settings)
    irc_settings = build_settings(IRCSettings, settings.get("irc"), "irc")
    qrc_settings = build_settings(QRCSettings, settings.get("qrc"), "qrc")
    verify = settings.get("verify", "irc")
    if verify not in VERIFY_METHODS:
        raise WorkerInputError(f"verify must be one of {list(VERIFY_METHODS)}, got {verify!r}")
    ts = reaction_atoms(reaction, "ts")
    n3 = 3 * len(ts)
    hessian = reaction.array("hessian", (n3, n3))
    if hessian is None:
        level = evaluator.level
        mode = level.hessian if level.hessian != HessianMode.NONE else level.exact_hessian
        hessian = evaluator.hessian(ts.numbers, ts.positions, mode=mode)
    if verify == "qrc":
        irc = run_qrc(ts, hessian, evaluator, qrc_settings, workdir / f"qrc{route.suffix}")
    else:
        irc = route.irc(ts, hessian, evaluator, irc_settings, workdir / f"irc{route.suffix}")
    reactant, product = reaction_atoms(reaction, "reactant", False), reaction_atoms(reaction, "product", False)
    outcome, message, check = judge_irc(irc, reactant, product)
    out = StageOutput(outcome, message, {"irc": irc.summary() | {"route": route.name.value}})
    if irc.trajectory:
        out.trajectories["irc"] = [atoms_to_dict(a) for a in irc.trajectory]
    if irc.energies_ev:
        out.arrays["irc_end_energies"] = np.asarray(irc.energies_ev, dtype=float)
    if irc.outcome is not Outcome.SUCCESS:
        return out
    out.structures["forward_end"] = atoms_to_dict(irc.forward_end)
    out.structures["backward_end"] = atoms_to_dict(irc.backward_end)
    for role, opt in (("forward_end", irc.forward_opt), ("backward_end", irc.backward_opt)):
        if opt is not None:
            out.summary[f"{role}_energy_ev"] = opt.energy_ev
    if check is not None:
        out.summary["endpoints"] = check.summary()
    return out


def run_ts_search_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """The whole chain for one reaction in one go (for jobs that carry many reactions)."""
    search_settings = build_settings(TSSearchSettings, settings, "ts_search")
    reactant, product = reaction_atoms(reaction, "reactant"), reaction_atoms(reaction, "product")
    result = _checked(ts_search, reactant, product, workdir, evaluator.level, search_settings, evaluator=evaluator)
    out = StageOutput(Outcome(result.status), result.message, result.to_dict())
    if result.ts is not None:
        out.structures["ts"] = atoms_to_dict(result.ts)
    return out


def run_dft_stage(reaction: ReactionInput, evaluator, settings: dict, workdir: Path) -> StageOutput:
    """DFT (PySCF) verification of one geometry (:mod:`aiida_hip.pipeline.dft_check`)."""
    dft = build_settings(DFTCheckSettings, settings, "dft stage")
    level = reaction.parameters.get("level", {})
    atoms = reaction_atoms(reaction, "structure")
    check = run_dft_check(atoms, dft, level.get("charge", 0), level.get("multiplicity"), reaction.name)
    return StageOutput(check.outcome, check.message, check.summary, arrays=check.arrays)


STAGE_FUNCTIONS = {
    "opt": run_opt_stage,
    "path": run_path_stage,
    "tsopt": run_tsopt_stage,
    "freq": run_freq_stage,
    "irc": run_irc_stage,
    "ts_search": run_ts_search_stage,
    "dft": run_dft_stage,
}


def _folder_name(index: int, name: str) -> str:
    return f"{index:03d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "reaction")


def _check_elements(reaction, evaluator) -> None:
    for role in reaction.structures:
        try:
            check_elements(reaction_atoms(reaction, role), evaluator, role)
        except ReactionInputError as exc:
            raise WorkerInputError(str(exc)) from exc


def run_reaction(job: WorkerInput, index: int, reaction, evaluator, out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """One reaction's stage: its ``results.json`` entry and arrays (keys ``r<index>__<name>``); every failure
    is an entry, never an exception."""
    entry: dict = {"name": reaction.name, "outcome": Outcome.ERROR.value, "message": ""}
    arrays: dict[str, np.ndarray] = {}
    counters = evaluator.counters if evaluator else None
    hessians, gradients, reference_hessians = (
        (counters.hessians, counters.gradients, counters.reference_hessians) if counters else (0, 0, 0)
    )
    t1 = time.perf_counter()
    try:
        if evaluator is not None:
            _check_elements(reaction, evaluator)
        stage = STAGE_FUNCTIONS[job.stage]
        output = stage(reaction, evaluator, job.settings, out / "work" / _folder_name(index, reaction.name))
    except WorkerInputError as exc:
        entry.update(outcome=Outcome.INVALID_INPUT.value, message=str(exc))
    except Exception as exc:  # one reaction's crash must not lose the others' results
        entry.update(
            outcome=Outcome.ERROR.value, message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    else:
        entry.update(
            outcome=Outcome(output.outcome).value,
            message=output.message,
            summary=output.summary,
            structures=output.structures,
            trajectories=output.trajectories,
            arrays={},
        )
        for key, value in output.arrays.items():
            if value is not None:
                arrays[f"r{index}__{key}"] = np.asarray(value)
                entry["arrays"][key] = f"r{index}__{key}"
    entry["n_hessian_evaluations"] = counters.hessians - hessians if counters else int(job.stage == "dft")
    entry["n_gradient_evaluations"] = counters.gradients - gradients if counters else int(job.stage == "dft")
    entry["n_reference_hessian_evaluations"] = (
        counters.reference_hessians - reference_hessians if counters else int(job.stage == "dft")
    )
    entry["wall_time_s"] = time.perf_counter() - t1
    return entry, arrays


def _check_keys(settings: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise WorkerInputError(f"unknown {where} setting(s) {unknown}; valid: {sorted(allowed)}")


def _checked(func, *args: Any, **kwargs: Any):
    """Turn the pipeline's input errors into worker input errors (a result, not a crash)."""
    try:
        return func(*args, **kwargs)
    except ReactionInputError as exc:
        raise WorkerInputError(str(exc)) from exc
