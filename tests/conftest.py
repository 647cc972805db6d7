"""Shared fixtures: float64 models for exact physics checks, small real molecules."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[1]
# Nothing a test runs may write into the home directory.
os.environ.setdefault("AIIDA_PATH", str(_ROOT / ".aiida"))
os.environ.setdefault("MPLCONFIGDIR", str(_ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_ROOT / ".cache" / "torchinductor"))

import torch  # noqa: E402
from ase.build import molecule  # noqa: E402

# Test models are tiny: one intra-op thread is fastest, and it cannot spin against other busy processes.
torch.set_num_threads(1)

from aiida_hip.hip import HIPConfig, build_model  # noqa: E402

# A temporary SQLite AiiDA profile (no broker) for the whole session, created by aiida-core's fixtures.
pytest_plugins = ["aiida.tools.pytest_fixtures"]

REACTIONS = _ROOT / "aiida_hip" / "reactions"

SMALL = HIPConfig(channels=8, num_layers=2, hessian_channels=4, radial_hidden=16)


@pytest.fixture(scope="session")
def model64():
    """A small random-init model built in float64, so symmetry checks can be tight."""
    torch.manual_seed(1234)
    return build_model(SMALL, dtype=torch.float64).eval()


@pytest.fixture(scope="session")
def ethanol():
    atoms = molecule("CH3CH2OH")
    return atoms.numbers.copy(), atoms.positions.copy()


@pytest.fixture(scope="session")
def glycine_like():
    """A 10-atom CHNO molecule (glycine) from ASE's g2 set."""
    atoms = molecule("CH3CONH2")
    return atoms.numbers.copy(), atoms.positions.copy()


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def worker_path() -> Path:
    import shutil
    import sys

    worker = Path(sys.executable).with_name("aiida-hip-worker")
    worker = worker if worker.is_file() else Path(shutil.which("aiida-hip-worker") or "")
    assert worker.is_file(), "aiida-hip-worker is not installed (pip install -e .)"
    return worker


def local_worker_code(label: str, workdir: Path):
    """A stored ``core.direct`` localhost computer ``label`` and the real worker as its ``hip-worker`` code."""
    from aiida import orm

    computer = orm.Computer(
        label=label,
        hostname="localhost",
        transport_type="core.local",
        scheduler_type="core.direct",
        workdir=str(workdir),
    ).store()
    computer.configure()
    computer.set_minimum_job_poll_interval(0)
    return orm.InstalledCode(label="hip-worker", computer=computer, filepath_executable=str(worker_path())).store()


@pytest.fixture
def hip_code(aiida_code_installed):
    """The real ``aiida-hip-worker`` of this environment as an AiiDA code on localhost."""
    return aiida_code_installed(
        label="hip-worker", default_calc_job_plugin="hip.opt", filepath_executable=str(worker_path())
    )


@pytest.fixture
def structure_of():
    """ASE-readable file or Atoms -> a molecule ``StructureData`` (pbc all False)."""
    from aiida import orm
    from ase.io import read

    def make(source):
        atoms = read(source) if isinstance(source, str | Path) else source
        atoms = atoms.copy()
        atoms.pbc = False
        structure = orm.StructureData(pbc=(False, False, False))
        for atom in atoms:
            structure.append_atom(position=tuple(atom.position), symbols=atom.symbol)
        return structure

    return make


@pytest.fixture(scope="session")
def committed_shards(tmp_path_factory) -> Path:
    """The campaign shards this checkout holds: the real folder when every listed shard is here, else a view
    (links and a manifest) of the ones in the tree, since later shards live in the history only
    (``python -m aiida_hip.dataset.archive restore``) and a test must not depend on a clone's depth."""
    import json

    root = _ROOT / "data" / "campaign" / "shards"
    manifest = json.loads((root / "manifest.json").read_text())
    present = [s for s in manifest["shards"] if (root / s["file"]).is_file()]
    if len(present) == len(manifest["shards"]):
        return root
    view = tmp_path_factory.mktemp("shards")
    for entry in present:
        (view / entry["file"]).symlink_to(root / entry["file"])
    (view / "manifest.json").write_text(json.dumps({**manifest, "shards": present}))
    return view
