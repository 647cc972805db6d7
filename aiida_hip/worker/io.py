"""The worker's file formats: one input JSON in, ``results.json`` + ``arrays.npz`` (+ ``.xyz``) out.

Plain JSON and NumPy only, so that a CalcJob can write the input and a parser can read the output
without importing torch or pysisyphus. Units: eV, Angstrom, eV/A^2, cm^-1.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..common.types import Outcome

SCHEMA = "aiida-hip-worker/1"
RESULTS_FILE = "results.json"
ARRAYS_FILE = "arrays.npz"
STAGES = ("opt", "path", "tsopt", "freq", "irc", "ts_search", "dft")

#: Per-reaction outcomes (the parsers map them onto exit codes with ``common.exit_codes``).
OUTCOMES = tuple(outcome.value for outcome in Outcome)

#: Worker exit statuses: 0 every reaction has a result (whatever its outcome); 2 the input file is
#: unusable (nothing ran); 3 an unexpected error (the traceback is in ``results.json``).
EXIT_OK, EXIT_INVALID_INPUT, EXIT_INTERNAL_ERROR = 0, 2, 3


class WorkerInputError(ValueError):
    """The input JSON (or one reaction in it) cannot be run; the message says what to fix."""


def structure_to_dict(symbols: list[str], positions: np.ndarray) -> dict:
    return {"symbols": list(symbols), "positions": np.asarray(positions, dtype=float).round(10).tolist()}


def atoms_to_dict(atoms) -> dict:
    return structure_to_dict(atoms.get_chemical_symbols(), atoms.positions)


@dataclass
class ReactionInput:
    """One reaction (or one molecule) for one stage: named structures (as ASE ``Atoms`` through
    :func:`aiida_hip.worker.stages.reaction_atoms`) and named arrays."""

    name: str
    structures: dict[str, dict]
    arrays: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def array(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        if key not in self.arrays or self.arrays[key] is None:
            return None
        value = np.asarray(self.arrays[key], dtype=float)
        if shape is not None and value.shape != shape:
            raise WorkerInputError(f"reaction {self.name!r}: array {key!r} must have shape {shape}, got {value.shape}")
        return value


@dataclass
class WorkerInput:
    stage: str
    level: dict
    settings: dict
    reactions: list[ReactionInput]
    checkpoint: dict | None = None
    threads: int | None = None
    #: reactions run in this many processes at once, sharing the parent's model (batched predictions)
    processes: int = 1


def read_input(path: str | Path) -> WorkerInput:
    """Parse and check the input JSON; every problem is a :class:`WorkerInputError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise WorkerInputError(f"input file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise WorkerInputError(f"input file {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise WorkerInputError(f"input file {path} is not an {SCHEMA} input (missing or wrong 'schema')")
    stage = data.get("stage")
    if stage not in STAGES:
        raise WorkerInputError(f"unknown stage {stage!r}; expected one of {STAGES}")
    reactions = data.get("reactions")
    if not isinstance(reactions, list) or not reactions:
        raise WorkerInputError("'reactions' must be a non-empty list")
    parsed, names = [], set()
    for i, entry in enumerate(reactions):
        if not isinstance(entry, dict) or not isinstance(entry.get("structures"), dict):
            raise WorkerInputError(f"reaction #{i} needs a 'structures' mapping")
        name = str(entry.get("name", f"reaction_{i}"))
        if name in names:
            raise WorkerInputError(f"reaction name {name!r} appears twice")
        names.add(name)
        parsed.append(
            ReactionInput(name, entry["structures"], entry.get("arrays") or {}, entry.get("parameters") or {})
        )
    checkpoint = data.get("checkpoint")
    if checkpoint is not None and not (isinstance(checkpoint, dict) and "file" in checkpoint):
        raise WorkerInputError("'checkpoint' must be null or {'file': ..., 'sha256': ...}")
    processes = data.get("processes", 1)
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise WorkerInputError(f"'processes' must be a positive integer, got {processes!r}")
    return WorkerInput(
        stage=stage,
        level=dict(data.get("level") or {}),
        settings=dict(data.get("settings") or {}),
        reactions=parsed,
        checkpoint=checkpoint,
        threads=data.get("threads"),
        processes=processes,
    )


def jsonable(value):
    """``json.dumps(default=...)`` for NumPy scalars and arrays (everything else is refused)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def input_text(
    stage: str,
    reactions: list[dict],
    level: dict | None = None,
    settings: dict | None = None,
    checkpoint: dict | None = None,
    threads: int | None = 1,
    processes: int = 1,
) -> str:
    """The worker input file's content (``write_input`` and the CalcJobs both write this)."""
    if stage not in STAGES:
        raise WorkerInputError(f"unknown stage {stage!r}; expected one of {STAGES}")
    payload = {
        "schema": SCHEMA,
        "stage": stage,
        "level": level or {},
        "settings": settings or {},
        "checkpoint": checkpoint,
        "threads": threads,
        "processes": processes,
        "reactions": reactions,
    }
    return json.dumps(payload, indent=1, default=jsonable)


def write_input(
    path: str | Path,
    stage: str,
    reactions: list[dict],
    level: dict | None = None,
    settings: dict | None = None,
    checkpoint: dict | None = None,
    threads: int | None = 1,
    processes: int = 1,
) -> Path:
    """Write a worker input file (the content of :func:`input_text`)."""
    path = Path(path)
    path.write_text(input_text(stage, reactions, level, settings, checkpoint, threads, processes))
    return path


def read_results(folder: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``results.json`` and the arrays of a finished worker run (arrays keyed ``reaction/name``)."""
    folder = Path(folder)
    results = json.loads((folder / RESULTS_FILE).read_text())
    arrays: dict[str, np.ndarray] = {}
    if (folder / ARRAYS_FILE).is_file():
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    return results, arrays


def record_failure(results: dict, exc: BaseException, invalid_input: bool = False) -> int:
    """Put ``exc`` into ``results`` as the job's error (an unexpected one with its traceback); its exit code."""
    if invalid_input:
        results["error"] = {"type": "invalid_input", "message": str(exc)}
        return EXIT_INVALID_INPUT
    results["error"] = {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}
    results["traceback"] = traceback.format_exc()
    return EXIT_INTERNAL_ERROR


#: the fine-tune job (:mod:`aiida_hip.worker.finetune`): its stage name, output model and staged data folder
FINETUNE_STAGE = "finetune"
MODEL_FILE = "finetuned.pt"
DATA_FOLDER = "data"


def finetune_input_text(checkpoint: dict | None, settings: dict, threads: int = 1) -> str:
    """The input JSON of a fine-tune job (the shard folder is staged as ``data/`` beside it)."""
    payload = {
        "schema": SCHEMA,
        "stage": FINETUNE_STAGE,
        "checkpoint": checkpoint,
        "data": DATA_FOLDER,
        "settings": settings,
        "threads": threads,
    }
    return json.dumps(payload, indent=1, default=jsonable)
