"""L5 parsers: ``results.json`` + ``arrays.npz`` of ``aiida-hip-worker`` -> output nodes and exit codes."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..calcjobs.base import structure_from_dict
from ..calcjobs.batch import link_label, summarize_rows, summary_row
from ..common.exit_codes import OUTCOME_EXIT_CODES
from ..common.types import Outcome
from ..data import HipModelData
from ..worker.io import ARRAYS_FILE, MODEL_FILE, OUTCOMES, RESULTS_FILE, jsonable


def trajectory_from_frames(frames: list[dict], energies: np.ndarray | None = None) -> orm.TrajectoryData:
    symbols = frames[0]["symbols"]
    positions = np.array([frame["positions"] for frame in frames], dtype=float)
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(symbols, positions)
    if energies is not None and len(energies) == len(frames):
        trajectory.set_array("energies", np.asarray(energies, dtype=float))
        trajectory.base.attributes.set("energies_units", "eV")
    trajectory.base.attributes.set("positions_units", "angstrom")
    return trajectory


class HipStageParser(Parser):
    """Parses any HIP stage: structures, Hessian/frequencies/modes, tangent, trajectories, parameters."""

    def _load(self):
        """``(results, arrays)`` from the retrieved folder, or the exit code that says why not."""
        try:
            retrieved = self.retrieved
        except Exception:
            return self.exit_codes.ERROR_OUTPUT_MISSING
        names = retrieved.base.repository.list_object_names()
        if RESULTS_FILE not in names:
            return self.exit_codes.ERROR_OUTPUT_MISSING
        try:
            results = json.loads(retrieved.base.repository.get_object_content(RESULTS_FILE))
            arrays = {}
            if ARRAYS_FILE in names:
                content = retrieved.base.repository.get_object_content(ARRAYS_FILE, mode="rb")
                with np.load(io.BytesIO(content), allow_pickle=False) as data:
                    arrays = {key: data[key] for key in data.files}
            if not isinstance(results, dict) or not isinstance(results.get("reactions", []), list):
                raise TypeError("results.json is not a worker results object")
        except (ValueError, KeyError, TypeError, OSError) as exc:
            return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=f"{type(exc).__name__}: {exc}")
        return results, arrays

    def _worker_error(self, error: dict):
        """The worker stopped before any reaction: its input was refused, or it crashed."""
        outcome = Outcome.INVALID_INPUT if error.get("type") == Outcome.INVALID_INPUT else Outcome.ERROR
        self.out("output_parameters", orm.Dict({"outcome": outcome.value, "message": error.get("message")}))
        return self._exit(outcome, error.get("message", ""))

    def _exit(self, outcome: Outcome, message: str):
        """The exit code of ``outcome`` (``None`` for success), from the one outcome table."""
        spec = OUTCOME_EXIT_CODES.get(outcome)
        return None if spec is None else getattr(self.exit_codes, spec.label).format(message=message)

    def parse(self, **kwargs):
        loaded = self._load()
        if isinstance(loaded, ExitCode):
            return loaded
        results, arrays = loaded
        error = results.get("error")
        if error:
            return self._worker_error(error)
        if not results.get("reactions"):
            return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=f"{RESULTS_FILE} lists no reaction")
        entry = results["reactions"][0]
        ports = self.node.process_class.spec().outputs
        for role, structure in (entry.get("structures") or {}).items():
            if role in ports:
                self.out(role, structure_from_dict(structure))
        keys = entry.get("arrays") or {}
        summary = entry.get("summary") or {}
        if "hessian" in keys and "hessian" in ports:
            node = orm.ArrayData()
            for name in ("hessian", "frequencies", "modes"):
                if name in keys:
                    node.set_array(name, arrays[keys[name]])
            node.base.attributes.set_many(
                {"hessian_units": "eV/angstrom^2", "frequencies_units": "cm^-1", "modes_units": "normalised cartesian"}
            )
            freq = summary.get("freq") or summary  # the dft stage reports at the top level
            node.base.attributes.set("n_imaginary", freq.get("n_imaginary"))
            node.base.attributes.set("hessian_source", freq.get("hessian_source") or summary.get("method"))
            self.out("hessian", node)
        if "tangent" in keys and "tangent" in ports:
            node = orm.ArrayData()
            node.set_array("tangent", arrays[keys["tangent"]])
            node.base.attributes.set("curvature", summary.get("curvature"))
            node.base.attributes.set("curvature_units", "eV/angstrom^2")
            self.out("tangent", node)
        for name, frames in (entry.get("trajectories") or {}).items():
            if name in ports and frames:
                energies = arrays.get(keys.get("path_energies", "")) if name == "path" else None
                self.out(name, trajectory_from_frames(frames, energies))

        parameters = {
            "stage": results.get("stage"),
            "outcome": entry["outcome"],
            "message": entry.get("message", ""),
            "n_hessian_evaluations": entry.get("n_hessian_evaluations"),
            "n_gradient_evaluations": entry.get("n_gradient_evaluations"),
            "n_reference_hessian_evaluations": entry.get("n_reference_hessian_evaluations"),
            "wall_time_s": entry.get("wall_time_s"),
            "worker_wall_time_s": results.get("wall_time_s"),
            "level": results.get("level"),
            "model": results.get("model"),
            **summary,
        }
        self.out("output_parameters", orm.Dict(_plain(parameters)))

        if entry["outcome"] not in OUTCOMES:
            return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=f"unknown outcome {entry['outcome']!r}")
        return self._exit(Outcome(entry["outcome"]), entry.get("message", ""))


def _plain(data: dict) -> dict:
    """NumPy scalars and arrays -> JSON types, so a ``Dict`` node can hold the data."""
    return json.loads(json.dumps(data, default=jsonable))


class HipTSBatchParser(HipStageParser):
    """Parses a packed ``hip.ts_batch`` job: one ``results.<name>`` per reaction the worker finished."""

    def parse(self, **kwargs):
        loaded = self._load()
        if isinstance(loaded, ExitCode):
            return loaded
        results, _ = loaded
        if results.get("error"):
            return self._worker_error(results["error"])
        expected = sorted(self.node.inputs.reactants) if "reactants" in self.node.inputs else []
        done: dict[str, dict] = {}
        for entry in results.get("reactions") or []:
            name = entry.get("name")
            if name not in expected:
                continue
            data = {
                **(entry.get("summary") or {}),
                "reaction": name,
                "outcome": entry.get("outcome"),
                "wall_time_s_worker": entry.get("wall_time_s"),
                "model": results.get("model"),
            }
            if not entry.get("summary"):  # crashed or rejected before the search began
                data.update(status=entry.get("outcome"), message=entry.get("message", ""), ts_found=False)
            done[name] = _plain(data)
            self.out(f"results.{link_label(name)}", orm.Dict(done[name]))
            ts = (entry.get("structures") or {}).get("ts")
            if ts is not None:
                self.out(f"transition_states.{link_label(name)}", structure_from_dict(ts))
        rows = [summary_row(name, done.get(name)) for name in expected]
        summary = summarize_rows(rows) | {
            "n_done": len(done),
            "worker_wall_time_s": results.get("wall_time_s"),
            "level": results.get("level"),
            "model": results.get("model"),
        }
        self.out("output_parameters", orm.Dict(_plain(summary)))
        if len(done) < len(expected):
            return self.exit_codes.ERROR_BATCH_INCOMPLETE.format(done=len(done), total=len(expected))
        if done and all(data["outcome"] in (Outcome.ERROR, Outcome.INVALID_INPUT) for data in done.values()):
            first = next(iter(done.values()))
            return self._exit(Outcome.ERROR, f"every reaction failed; first: {first.get('message', '')}")
        return None


class HipFinetuneParser(Parser):
    """Parses ``hip.finetune``: the new checkpoint as a ``HipModelData`` and the worker's report."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        if RESULTS_FILE not in names:
            return self.exit_codes.ERROR_OUTPUT_MISSING  # killed before it finished: the work chain runs it again
        try:
            results = json.loads(retrieved.base.repository.get_object_content(RESULTS_FILE))
        except ValueError as exc:
            return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=f"{RESULTS_FILE}: {exc}")
        error = results.get("error")
        if error:
            self.out("output_parameters", orm.Dict({"outcome": error.get("type"), "message": error.get("message")}))
            label = "ERROR_INVALID_INPUT" if error.get("type") == Outcome.INVALID_INPUT else "ERROR_WORKER_CRASHED"
            return getattr(self.exit_codes, label).format(message=error.get("message", ""))
        report = results.get("report") or {}
        if MODEL_FILE not in names:
            return self.exit_codes.ERROR_OUTPUT_MISSING
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            path.write_bytes(retrieved.base.repository.get_object_content(MODEL_FILE, mode="rb"))
            try:
                model = HipModelData(path, sha256=report.get("sha256"), source=f"finetune of {report.get('parent')}")
            except ValueError as exc:
                return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=str(exc))
        self.out("model", model)
        self.out("output_parameters", orm.Dict(_plain(report | {"wall_time_s": results.get("wall_time_s")})))
        return None
