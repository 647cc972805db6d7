"""The worker's entry point: read the input, load the level once, run the stage per reaction, write out."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..common.files import SHIPPED_CHECKPOINT, sha256_of
from ..common.level import PARAMETER_KEYS, Level, LevelError
from ..pipeline.calculators import Evaluator
from .io import (
    ARRAYS_FILE,
    EXIT_OK,
    FINETUNE_STAGE,
    RESULTS_FILE,
    SCHEMA,
    WorkerInput,
    WorkerInputError,
    jsonable,
    read_input,
    record_failure,
)
from .parallel import run_parallel
from .stages import run_reaction


def _resolve_checkpoint(spec: dict | None, base: Path) -> tuple[str | None, dict]:
    """The checkpoint file to load and what provenance should record; a hash mismatch is an input error."""
    shipped = sha256_of(SHIPPED_CHECKPOINT)
    if spec is None:
        return None, {"file": SHIPPED_CHECKPOINT.name, "sha256": shipped, "shipped": True}
    path = Path(spec["file"])
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise WorkerInputError(f"checkpoint file not found: {path}")
    digest = sha256_of(path)
    expected = spec.get("sha256")
    if expected and expected != digest:
        raise WorkerInputError(
            f"checkpoint {path.name} has SHA-256 {digest[:16]}..., but the input expects {expected[:16]}...: "
            "the file is not the model it claims to be"
        )
    # a copy of the shipped file (as a CalcJob stages it) is still the shipped model
    return str(path), {"file": path.name, "sha256": digest, "shipped": digest == shipped}


def _make_evaluator(job: WorkerInput, base: Path):
    if "checkpoint" in job.level:
        raise WorkerInputError(f"unknown level key(s) ['checkpoint']; valid: {list(PARAMETER_KEYS)}")
    try:
        level = Level.from_dict(job.level)
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


def _stage_of(input_file: Path) -> str | None:
    """The ``stage`` an input file names (``None`` when it is not readable JSON: ``read_input`` says why)."""
    try:
        data = json.loads(input_file.read_text())
    except (OSError, ValueError):
        return None
    return data.get("stage") if isinstance(data, dict) else None


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

    if _stage_of(input_file) == FINETUNE_STAGE:  # a training job, not a reaction stage
        from .finetune import run_finetune_job  # torch + h5py: only a fine-tune job needs them here

        return run_finetune_job(json.loads(input_file.read_text()), input_file.parent, out, _resolve_checkpoint)
    try:
        job = read_input(input_file)
        results["stage"] = job.stage
        if job.threads:  # torch and BLAS alike: several workers share a node's cores
            import torch  # here only: a job with no thread count and no model never loads torch

            torch.set_num_threads(int(job.threads))
            threadpool_limits(int(job.threads))
        if job.stage == "dft":  # PySCF only: no model, no xTB
            evaluator, model_info = None, None
            for reaction in job.reactions:
                reaction.parameters.setdefault("level", job.level)
        else:
            evaluator, model_info = _make_evaluator(job, input_file.parent)
    except WorkerInputError as exc:
        return finish(record_failure(results, exc, invalid_input=True))
    except Exception as exc:
        return finish(record_failure(results, exc))

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
        try:
            results["model_server"] = run_parallel(job, input_file, out, evaluator, save)
        except Exception as exc:  # the finished reactions are saved; say what broke
            return finish(record_failure(results, exc))
        return finish(EXIT_OK)
    for index, reaction in enumerate(job.reactions):
        save(*run_reaction(job, index, reaction, evaluator, out))
    return EXIT_OK


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
        for entry in results.get("reactions", []):
            print(f"{entry['name']}: {entry['outcome']} ({entry['message']})")
        if "report" in results:
            held = results["report"].get("held_out") or {}
            print(
                f"finetune: {results['model_file']}, held-out Hessian MAE {held.get('hessian_mae_before')} -> "
                f"{held.get('hessian_mae_after')}"
            )
    return code


def cli() -> None:
    """The ``aiida-hip-worker`` command: ``main``, then leave without the interpreter's teardown.

    Freeing torch, tblite and pysisyphus state at interpreter shutdown took about 2 s after the results
    were written (measured on 2 cores), and the scheduler sees a job as running until its process is
    gone: that is 2 s of every job's wall time. Every output file is closed by the time ``main`` returns;
    the standard streams and logging handlers are flushed here before the hard exit.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    cli()
