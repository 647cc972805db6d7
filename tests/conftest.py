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
