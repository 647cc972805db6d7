"""The checkpoint shipped inside the package: loads offline, covers every element combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aiida_hip.hip import load_model
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT, read_checkpoint, sha256

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no checkpoint ships yet")


@pytest.fixture(scope="module")
def shipped():
    return load_model()


def _zigzag(numbers: tuple[int, ...]) -> np.ndarray:
    """Atoms 1.3 A apart on a planar zigzag: a valid, if unusual, geometry for any composition."""
    return np.array([[1.1 * k, 0.75 * (k % 2), 0.0] for k in range(len(numbers))])


@pytest.mark.parametrize("elements", [c for r in range(1, 5) for c in itertools.combinations((1, 6, 7, 8), r)])
def test_predicts_every_element_combination(shipped, elements):
    numbers = elements if len(elements) > 1 else elements * 2
    out = shipped.predict(np.array(numbers), _zigzag(numbers))
    n = len(numbers)
    assert out["hessian"].shape == (3 * n, 3 * n)
    assert np.all(np.isfinite(out["hessian"])) and np.array_equal(out["hessian"], out["hessian"].T)
    assert np.isfinite(out["energy"]) and np.all(np.isfinite(out["forces"]))


def test_model_card_records_the_checksum():
    card = DEFAULT_CHECKPOINT.with_name("MODEL_CARD.md").read_text()
    assert sha256(DEFAULT_CHECKPOINT) in card
    assert tuple(read_checkpoint(DEFAULT_CHECKPOINT)["config"]["elements"]) == (1, 6, 7, 8)
    assert DEFAULT_CHECKPOINT.stat().st_size < 20 * 2**20


def test_trained_hessian_is_close_to_xtb_for_water(shipped):
    from aiida_hip.chem.reference import XTBReference

    numbers = np.array([8, 1, 1])
    pos = np.array([[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47]])
    ref = XTBReference(workers=1).predict(numbers, pos)["hessian"]
    pred = shipped.predict(numbers, pos)["hessian"]
    # Loose: catches a broken or untrained checkpoint (untrained models are off by several eV/A^2).
    assert np.abs(pred - ref).mean() < 1.0
