"""Validation of user input: bad molecules fail with a clear message, not deep inside e3nn.

The checks live in :mod:`aiida_hip.common.molecule`, shared with the reference level and the pipeline.
"""

from ..common.molecule import InvalidMoleculeError, check_molecule

__all__ = ["InvalidMoleculeError", "check_molecule"]
