"""The worker's entry point: read the input, load the level once, run the stage per reaction, write out."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .io import (
    ARRAYS_FILE,
    EXIT_INTERNAL_ERROR,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    RESULTS_FILE,
    SCHEMA,
    WorkerInput,
    WorkerInputError,
    jsonable,
    read_input,
)


def _folder_name(index: int, name: str) -> str:
    return f"{index:03d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "reaction")


def _resolve_checkpoint(spec: dict | None, base: Path) -> tuple[str | None, dict]:
    """The checkpoint file to load and what provenance should record; a hash mismatch is an input error."""
    from ..hip.checkpoints import DEFAULT_CHECKPOINT, sha256

    if spec is None:
        return None, {"file": DEFAULT_CHECKPOINT.name, "sha256": sha256(DEFAULT_CHECKPOINT), "shipped": True}
    path = Path(spec["file"])
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise WorkerInputError(f"checkpoint file not found: {path}")
    digest = sha256(path)
    expected = spec.get("sha256")
    if expected and expected != digest:
        raise WorkerInputError(
            f"checkpoint {path.name} has SHA-256 {digest[:16]}..., but the input expects {expected[:16]}...: "
            "the file is not the model it claims to be"
        )
    return str(path), {"file": path.name, "sha256": digest, "shipped": False}


def _make_evaluator(job: WorkerInput, base: Path):
    from ..pipeline import Evaluator, Level, LevelError

    allowed = {"calculator", "hessian", "charge", "multiplicity", "device"}
    unknown = sorted(set(job.level) - allowed)
    if unknown:
        raise WorkerInputError(f"unknown level key(s) {unknown}; valid: {sorted(allowed)}")
    try:
        level = Level(**job.level)
    except (LevelError, TypeError) as exc:
        raise WorkerInputError(f"invalid level: {exc}") from exc
    model_info = None
    if level.uses_model:
        checkpoint, model_info = _resolve_checkpoint(job.checkpoint, base)
        level = Level(**{**job.level, "checkpoint": checkpoint})
    try:
        evaluator = Evaluator(level)
    except LevelError as exc:
        raise WorkerInputError(str(exc)) from exc
    except Exception as exc:  # a checkpoint that is not one, a broken tblite, ...
        raise WorkerInputError(f"cannot set up the level {job.level}: {type(exc).__name__}: {exc}") from exc
    return evaluator, model_info


def _check_elements(reaction, evaluator) -> None:
    from ..pipeline.inputs import ReactionInputError, check_elements

    for role in reaction.structures:
        try:
            check_elements(reaction.atoms(role), evaluator, role)
        except ReactionInputError as exc:
            raise WorkerInputError(str(exc)) from exc


def run_worker(input_file: str | Path, output_dir: str | Path | None = None) -> int:
    """Run the job in ``input_file``; write results into ``output_dir`` (default: its folder)."""
    input_file = Path(input_file).resolve()
    out = Path(output_dir).resolve() if output_dir else input_file.parent
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict = {"schema": SCHEMA, "status": "error", "error": None, "reactions": []}

    def finish(code: int) -> int:
        results["wall_time_s"] = time.perf_counter() - t0
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=jsonable))
        return code

    try:
        job = read_input(input_file)
        results["stage"] = job.stage
        if job.threads:  # torch and BLAS alike: several workers share a node's cores
            import torch
            from threadpoolctl import threadpool_limits

            torch.set_num_threads(int(job.threads))
            threadpool_limits(int(job.threads))
        if job.stage == "dft":  # PySCF only: no model, no xTB
            evaluator, model_info = None, None
            for reaction in job.reactions:
                reaction.parameters.setdefault("level", job.level)
        else:
            evaluator, model_info = _make_evaluator(job, input_file.parent)
    except WorkerInputError as exc:
        results["error"] = {"type": "invalid_input", "message": str(exc)}
        return finish(EXIT_INVALID_INPUT)
    except Exception as exc:
        results["error"] = {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}
        results["traceback"] = traceback.format_exc()
        return finish(EXIT_INTERNAL_ERROR)

    results["level"] = evaluator.level.to_dict() | {"checkpoint": None} if evaluator else job.level
    results["model"] = model_info
    arrays: dict[str, np.ndarray] = {}

    def save(entry: dict, entry_arrays: dict[str, np.ndarray]) -> None:
        """After every reaction, so that a job killed half-way keeps what it finished."""
        results["reactions"].append(entry)
        arrays.update(entry_arrays)
        if arrays:
            np.savez_compressed(out / ARRAYS_FILE, **arrays)
        results["status"] = "running" if len(results["reactions"]) < len(job.reactions) else "done"
        finish(EXIT_OK)

    if job.processes > 1 and len(job.reactions) > 1 and job.stage != "dft":
        from .parallel import run_parallel

        try:
            results["model_server"] = run_parallel(job, input_file, out, evaluator, save)
        except Exception as exc:  # the finished reactions are saved; say what broke
            results["error"] = {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}
            results["traceback"] = traceback.format_exc()
            return finish(EXIT_INTERNAL_ERROR)
        return finish(EXIT_OK)
    for index, reaction in enumerate(job.reactions):
        save(*run_reaction(job, index, reaction, evaluator, out))
    return EXIT_OK


def run_reaction(job: WorkerInput, index: int, reaction, evaluator, out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """One reaction's stage: its ``results.json`` entry and arrays (keys ``r<index>__<name>``); every failure
    is an entry, never an exception."""
    from .stages import STAGE_FUNCTIONS

    entry: dict = {"name": reaction.name, "outcome": "error", "message": ""}
    arrays: dict[str, np.ndarray] = {}
    counters = evaluator.counters if evaluator else None
    hessians, gradients = (counters.hessians, counters.gradients) if counters else (0, 0)
    t1 = time.perf_counter()
    try:
        if evaluator is not None:
            _check_elements(reaction, evaluator)
        stage = STAGE_FUNCTIONS[job.stage]
        output = stage(reaction, evaluator, job.settings, out / "work" / _folder_name(index, reaction.name))
    except WorkerInputError as exc:
        entry.update(outcome="invalid_input", message=str(exc))
    except Exception as exc:  # one reaction's crash must not lose the others' results
        entry.update(outcome="error", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    else:
        entry.update(
            outcome=output.outcome,
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
    entry["wall_time_s"] = time.perf_counter() - t1
    return entry, arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aiida-hip-worker", description="Run one aiida-hip pipeline stage for the reactions in INPUT.json."
    )
    parser.add_argument("input", help="worker input JSON (written by an aiida-hip CalcJob or write_input())")
    parser.add_argument("--output-dir", default=None, help="where results.json goes (default: the input's folder)")
    args = parser.parse_args(argv)
    code = run_worker(args.input, args.output_dir)
    results = json.loads((Path(args.output_dir or Path(args.input).resolve().parent) / RESULTS_FILE).read_text())
    if results.get("error"):
        print(f"aiida-hip-worker: {results['error']['type']}: {results['error']['message']}", file=sys.stderr)
    else:
        for entry in results["reactions"]:
            print(f"{entry['name']}: {entry['outcome']} ({entry['message']})")
    return code


def cli() -> None:
    """The ``aiida-hip-worker`` command: ``main``, then leave without the interpreter's teardown.

    Freeing torch, tblite and pysisyphus state at interpreter shutdown took about 2 s after the results
    were written (measured on 2 cores), and the scheduler sees a job as running until its process is
    gone: that is 2 s of every job's wall time. Every output file is closed by the time ``main`` returns;
    the standard streams and logging handlers are flushed here before the hard exit.
    """
    import logging
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    cli()
