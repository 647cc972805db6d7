"""Reactions of one job in parallel processes that share the parent's model (batched predictions)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from ase.build import molecule

from aiida_hip.hip import load_model
from aiida_hip.worker import EXIT_OK, read_results, write_input
from aiida_hip.worker.io import WorkerInputError, atoms_to_dict, read_input
from aiida_hip.worker.main import run_worker
from aiida_hip.worker.parallel import PREDICT, ModelClient, ServerStats, serve

MOLECULES = ("H2O", "CH3OH", "CH3CH2OH", "HCOOH")


@pytest.fixture(scope="module")
def model():
    return load_model(dtype=torch.float64)


def test_batched_answers_equal_single_predictions(model):
    """One batched forward for requests of different sizes; a geometry the model refuses gets its own
    error and does not spoil the others."""
    pairs = [multiprocessing.Pipe() for _ in range(4)]
    requests = []
    for (parent, _), name in zip(pairs, ("H2O", "CH3OH", "CH3CH2OH"), strict=False):
        atoms = molecule(name)
        requests.append((parent, (PREDICT, atoms.numbers, atoms.positions, "predicted", name)))
    broken = molecule("H2O")
    broken.positions[1] = broken.positions[0]  # two atoms on one spot
    requests.append((pairs[3][0], (PREDICT, broken.numbers, broken.positions, "predicted", "broken")))
    stats = ServerStats()
    serve(model, requests, stats)
    for (_, child), name in zip(pairs[:3], ("H2O", "CH3OH", "CH3CH2OH"), strict=True):
        status, out = child.recv()
        atoms = molecule(name)
        direct = model.predict(atoms.numbers, atoms.positions, hessian="predicted")
        assert status == "ok"
        assert out["energy"] == pytest.approx(direct["energy"], abs=1e-9)
        assert np.allclose(out["forces"], direct["forces"], atol=1e-9)
        assert np.allclose(out["hessian"], direct["hessian"], atol=1e-9)
    status, message = pairs[3][1].recv()
    assert status == "error" and "0.1" in message, message
    assert stats.requests == 4 and stats.batches == 1 and stats.max_batch == 4


def test_client_raises_the_servers_error():
    parent, child = multiprocessing.Pipe()
    parent.send(("error", "InvalidMoleculeError: atoms closer than 0.1 A"))
    with pytest.raises(ValueError, match="closer than"):
        ModelClient(child).predict([1, 1], np.zeros((2, 3)))


def _entries():
    out = []
    for k, name in enumerate(MOLECULES):
        atoms = molecule(name)
        atoms.positions += np.random.default_rng(k).normal(scale=0.04, size=atoms.positions.shape)
        out.append({"name": name, "structures": {"structure": atoms_to_dict(atoms)}})
    return out


def test_parallel_job_gives_the_serial_results(tmp_path):
    """Four HIP minimisations, two processes at a time sharing one model: every molecule finishes, with
    the energies of the one-process run. Whether two requests ever meet in one batch depends on timing
    (on a loaded 2-core machine the processes fall into alternating): batching itself is tested above."""
    runs = {}
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        write_input(
            folder / "in.json", "opt", _entries(), settings={"opt": {"convergence": "normal"}}, processes=processes
        )
        assert run_worker(folder / "in.json") == EXIT_OK
        runs[processes] = read_results(folder)[0]
    serial, parallel = runs[1], runs[2]
    assert "model_server" not in serial
    stats = parallel["model_server"]
    assert stats["processes"] == 2 and stats["requests"] > 0 and stats["max_batch"] in (1, 2), stats
    assert sum(size * n for size, n in ((int(k), v) for k, v in stats["batch_sizes"].items())) == stats["requests"]
    assert parallel["status"] == "done" and len(parallel["reactions"]) == len(MOLECULES)
    energies = {run: {e["name"]: e["summary"]["opt"]["energy_ev"] for e in runs[run]["reactions"]} for run in (1, 2)}
    for name in MOLECULES:
        assert energies[2][name] == pytest.approx(energies[1][name], abs=1e-5), name
    assert all(e["n_gradient_evaluations"] > 0 for e in parallel["reactions"])


def test_processes_must_be_a_positive_integer(tmp_path):
    write_input(tmp_path / "in.json", "opt", _entries()[:1], processes=1)
    text = (tmp_path / "in.json").read_text().replace('"processes": 1', '"processes": 0')
    (tmp_path / "in.json").write_text(text)
    with pytest.raises(WorkerInputError, match="processes"):
        read_input(tmp_path / "in.json")
