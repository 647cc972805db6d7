"""``aiida-hip ts-search``, ``aiida-hip optimize`` and ``aiida-hip freq``: the L3 pipeline from the shell."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import click
from ase.io import write
from threadpoolctl import threadpool_limits

from ..common.level import Level, LevelError
from ..common.types import DEFAULT_VERIFY, VERIFY_METHODS, Calculator, HessianMode, Outcome, Route, choices
from ..pipeline import (
    Evaluator,
    OptSettings,
    ReactionInputError,
    TSSearchSettings,
    read_reaction,
    run_freq,
    run_opt,
    ts_search,
)
from ..pipeline.calculators import cached_model
from ..pipeline.inputs import check_structure, read_structure
from .options import REFINE_OPTION, default_hessian

HESSIAN_HELP = (
    "Hessians for the optimisers: predicted (HIP head), autograd or finite-difference (of the HIP energy), "
    "reference (GFN2-xTB finite differences) or none (guess Hessian + quasi-Newton updates only)."
)


def _threads(n: int) -> None:
    """Small molecules are latency-bound: one BLAS/OpenMP/torch thread unless asked otherwise."""
    os.environ["OMP_NUM_THREADS"] = str(n)  # torch, when the model loads it later, sizes its pool from this
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    threadpool_limits(n)


def _level(calculator: str, hessian: str, checkpoint: Path | None, charge: int) -> Level:
    try:
        return Level(
            calculator=calculator, hessian=hessian, checkpoint=str(checkpoint) if checkpoint else None, charge=charge
        )
    except LevelError as exc:
        raise click.ClickException(str(exc)) from exc


def _evaluator(level: Level):
    errors: tuple[type[Exception], ...] = (LevelError,)
    if level.uses_model:
        from ..hip import CheckpointError  # torch: only where the model is used

        errors += (CheckpointError,)
    try:
        evaluator = Evaluator(level)
        if level.uses_model:  # loaded now, so that a bad checkpoint is an input error before any work
            cached_model(level.checkpoint, level.device)
        return evaluator
    except errors as exc:
        raise click.ClickException(str(exc)) from exc


def _read(path: Path, role: str):
    try:
        atoms = read_structure(path, role)
        check_structure(atoms, role)
    except ReactionInputError as exc:
        raise click.ClickException(str(exc)) from exc
    return atoms


def _common(func):
    options = [
        click.option(
            "--calculator",
            type=click.Choice(choices(Calculator)),
            default=Calculator.HIP.value,
            show_default=True,
            help="Energies and forces: the HIP model or GFN2-xTB.",
        ),
        click.option(
            "--hessian",
            type=click.Choice(choices(HessianMode)),
            default=None,
            help=HESSIAN_HELP + "  [default: predicted with hip, reference with xtb]",
        ),
        click.option(
            "--checkpoint",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="HIP checkpoint (default: the one shipped with aiida-hip).",
        ),
        click.option("--charge", type=int, default=0, show_default=True),
        click.option(
            "--convergence",
            type=click.Choice(["loose", "normal", "tight", "verytight"]),
            default="normal",
            show_default=True,
            help="Gaussian convergence preset for every optimisation.",
        ),
        click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (BLAS, OpenMP, torch)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _refinement_evaluator(level, refine: str) -> None:
    """Fail before any work when the refinement level cannot run (PySCF missing for ``dft``)."""
    try:
        Evaluator(level.refined(refine), model=object())  # the model is loaded once, by the search
    except LevelError as exc:
        raise click.UsageError(f"--refine {refine}: {exc}") from exc


@click.command("ts-search")
@click.argument("reactant", type=click.Path(path_type=Path))
@click.argument("product", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: one subfolder per stage, result.json, ts.xyz.",
)
@_common
@click.option(
    "--route",
    type=click.Choice(sorted(choices(Route))),  # sorted: auto first, as --help has always listed them
    default=Route.AUTO.value,
    show_default=True,
    help="pysisyphus: path -> RS-P-RFO -> EulerPC IRC; sella: geodesic -> Sella -> Sella IRC; "
    "auto: Sella, then pysisyphus if Sella did not verify a TS.",
)
@click.option("--no-irc", is_flag=True, help="Stop after the frequency check.")
@click.option("--max-tsopt-steps", type=int, default=100, show_default=True)
@click.option(
    "--hessian-recalc",
    type=click.IntRange(min=0),
    default=None,
    help="Fresh Hessian every k TS steps (0: at the start only, then the optimiser's own estimate). Default: "
    "every step (approximate Hessians under the guard).",
)
@REFINE_OPTION
@click.option(
    "--guess",
    type=click.Choice(["reference", "hip"]),
    default="reference",
    show_default=True,
    help="Two-level search: the path and TS guess from single points at the refinement level, or from the HIP "
    "surface with a TS pre-optimisation there.",
)
@click.option(
    "--no-guard",
    is_flag=True,
    help="Give approximate Hessians to the TS optimiser even when they disagree with the surface.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0, min_open=True),
    default=298.15,
    show_default=True,
    help="K, for the RRHO thermochemistry and Eyring rates of a verified TS.",
)
@click.option(
    "--verify",
    type=click.Choice(list(VERIFY_METHODS)),
    default=DEFAULT_VERIFY,
    show_default=True,
    help="irc: the IRC both ways (a reaction profile); qrc: both sides of the TS mode minimised (cheaper).",
)
@click.option(
    "--attempts",
    default=None,
    help="Comma-separated route:guess:hessian attempts (e.g. sella:highest:none,sella:highest:exact); default: "
    "the plan of --route (a wrong TS ends one attempt, the next guess follows).",
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, help="Default: the whole plan.")
def ts_search_cmd(
    reactant,
    product,
    out_dir,
    calculator,
    hessian,
    checkpoint,
    charge,
    convergence,
    threads,
    route,
    no_irc,
    max_tsopt_steps,
    hessian_recalc,
    refine,
    guess,
    no_guard,
    temperature,
    verify,
    attempts,
    max_attempts,
) -> None:
    """Find and verify the transition state between REACTANT and PRODUCT (any ASE-readable files, same atom order).

    Path -> TS optimisation -> frequencies -> IRC -> endpoint check; writes OUT/result.json. Exits 0 on a
    verified TS, 1 when the search ran but failed (the status says at which stage), 2 on bad input.
    """
    _threads(threads)
    try:
        r, p = read_reaction(reactant, product)
    except ReactionInputError as exc:
        raise click.UsageError(str(exc)) from exc
    level = _level(calculator, default_hessian(calculator, hessian), checkpoint, charge)
    evaluator = _evaluator(level)
    try:
        settings = TSSearchSettings.with_convergence(
            convergence,
            run_irc=not no_irc,
            route=route,
            temperature=temperature,
            refine=refine,
            guess_level=guess,
            verify=verify,
            attempts=tuple(a.strip() for a in attempts.split(",") if a.strip()) if attempts else None,
            max_attempts=max_attempts,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    tsopt = replace(settings.tsopt, max_cycles=max_tsopt_steps, guard=not no_guard)
    if hessian_recalc is not None:  # one k for exact and approximate Hessians alike
        tsopt = replace(tsopt, hessian_recalc=hessian_recalc, approximate_recalc=hessian_recalc)
    settings = replace(settings, tsopt=tsopt)
    if settings.two_level(level):
        _refinement_evaluator(level, refine)
    click.echo(f"TS search {reactant} -> {product}: {calculator} energies, {level.hessian} Hessians, out {out_dir}")

    def progress(stage: str, message: str) -> None:
        click.echo(f"  [{stage:>9}] {message}")

    try:
        result = ts_search(r, p, out_dir, level=level, settings=settings, progress=progress, evaluator=evaluator)
    except ReactionInputError as exc:
        raise click.UsageError(str(exc)) from exc
    _summary(result.to_dict(), out_dir)
    if result.status != Outcome.SUCCESS:
        raise SystemExit(1)


def _summary(d: dict, out_dir: Path) -> None:
    def fmt(value, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    rows = [
        ("status", d["status"]),
        ("TS found", str(d["ts_found"])),
        ("imaginary modes", fmt(d["n_imaginary"], "d")),
        ("imaginary frequency (cm^-1)", fmt(d["imaginary_frequency_cm1"], ".1f")),
        ("IRC intended", str(d["irc_intended"])),
        ("barrier forward (eV)", fmt(d["barrier_forward_ev"])),
        ("barrier reverse (eV)", fmt(d["barrier_reverse_ev"])),
        ("TS optimisation steps", fmt(d["n_tsopt_steps"], "d")),
    ]
    thermo = d.get("thermochemistry") or {}
    if "gibbs_barrier_forward_ev" in thermo:
        t = thermo["temperature_k"]
        rows += [
            (f"Gibbs barrier forward, {t:g} K (eV)", fmt(thermo["gibbs_barrier_forward_ev"])),
            (f"Gibbs barrier reverse, {t:g} K (eV)", fmt(thermo["gibbs_barrier_reverse_ev"])),
            ("Eyring rate forward (1/s)", fmt(thermo["rate_forward_per_s"], ".3e")),
        ]
    rows += [
        ("Hessian evaluations", str(d["n_hessian_evaluations"])),
        ("wall time (s)", fmt(d["wall_time_s"].get("total"), ".1f")),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
    click.echo(f"  {'result':<{width}}  {out_dir / 'result.json'}")
    for a in d.get("attempts") or []:
        what = f"skipped: {a['reason']}" if a.get("skipped") else f"{a['status']}: {a.get('message', '')[:70]}"
        hip = "; HIP Hessians used" if a.get("model_hessians_used") else ""
        click.echo(f"  attempt {a['index']} {a['attempt']:<26} {what}{hip}")


@click.command("optimize")
@click.argument("molecule", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@_common
@click.option("--max-steps", type=int, default=150, show_default=True)
def optimize_cmd(molecule, out_dir, calculator, hessian, checkpoint, charge, convergence, threads, max_steps) -> None:
    """Minimise MOLECULE (RFO, model Hessians) and characterise it (frequencies, ZPE)."""
    _threads(threads)
    atoms = _read(molecule, "molecule")
    evaluator = _evaluator(_level(calculator, default_hessian(calculator, hessian), checkpoint, charge))
    opt = run_opt(atoms, evaluator, OptSettings(convergence=convergence, max_cycles=max_steps), out_dir / "opt")
    freq = run_freq(opt.atoms, evaluator, "minimum", workdir=out_dir / "freq")
    write(out_dir / "optimized.xyz", opt.atoms)
    result = {"optimization": opt.summary(), "frequencies": freq.summary(), "files": {"optimized": "optimized.xyz"}}
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=float))
    click.echo(f"  {opt.message} after {opt.n_cycles} steps, E = {opt.energy_ev:.6f} eV")
    click.echo(f"  {freq.classification}: {freq.n_imaginary} imaginary mode(s), ZPE {freq.zpe_ev:.4f} eV")
    click.echo(f"  result: {out_dir / 'result.json'}")
    if not (opt.converged and freq.ok):
        raise SystemExit(1)


@click.command("freq")
@click.argument("molecule", type=click.Path(path_type=Path))
@_common
@click.option("--expect", type=click.Choice(["minimum", "ts"]), default="minimum", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def freq_cmd(molecule, calculator, hessian, checkpoint, charge, convergence, threads, expect, as_json) -> None:
    """Eckart-projected harmonic frequencies of MOLECULE (no optimisation; --convergence is unused)."""
    _threads(threads)
    atoms = _read(molecule, "molecule")
    evaluator = _evaluator(_level(calculator, default_hessian(calculator, hessian), checkpoint, charge))
    freq = run_freq(atoms, evaluator, expect)
    if as_json:
        click.echo(json.dumps(freq.summary() | {"frequencies_cm1": freq.frequencies_cm1.tolist()}, indent=2))
        return
    click.echo(
        f"{freq.classification}: {freq.n_imaginary} imaginary mode(s) (threshold {freq.imaginary_threshold_cm1} cm^-1)"
    )
    click.echo("frequencies (cm^-1): " + " ".join(f"{f:.1f}" for f in freq.frequencies_cm1))
    click.echo(
        f"ZPE {freq.zpe_ev:.4f} eV; RMS force {freq.rms_force_ev_per_a:.4f} eV/A; Hessian: {freq.hessian_source}"
    )
