"""Bad input fails with a clear ValueError, not a traceback from inside e3nn."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_hip.hip import InvalidMoleculeError

WATER_Z = [8, 1, 1]
WATER_R = [[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47]]


@pytest.mark.parametrize(
    ("numbers", "positions", "message"),
    [
        (WATER_Z, WATER_R[:2], r"positions must have shape \(3, 3\)"),
        (WATER_Z, [*np.array(WATER_R).T.tolist(), [0, 0, 0]], r"shape \(3, 3\)"),
        (WATER_Z, [[0.0, 0.0, np.nan], *WATER_R[1:]], r"non-finite .* atoms \[0\]"),
        ([8, 1, 17], WATER_R, r"unsupported element.*\[17\]"),
        (WATER_Z, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.05], [1.0, 0.0, 0.0]], r"atoms 0 and 1 are 0.050 A apart"),
        ([], np.zeros((0, 3)), "non-empty"),
        ([8.5, 1, 1], WATER_R, "integers"),
    ],
)
def test_bad_molecules(model64, numbers, positions, message):
    with pytest.raises(InvalidMoleculeError, match=message):
        model64.predict(numbers, positions)
    assert issubclass(InvalidMoleculeError, ValueError)


def test_batch_names_the_bad_molecule(model64):
    with pytest.raises(InvalidMoleculeError, match="molecule 1"):
        model64.predict_batch([(WATER_Z, WATER_R), ([8, 1, 9], WATER_R)])
