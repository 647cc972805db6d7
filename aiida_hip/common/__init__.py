"""L0: the vocabulary every layer shares (enums, the level of theory, molecule checks, outcome table).

Imports nothing heavier than NumPy, so that the daemon, the CalcJob validators and the CLI can use it
without loading torch, ASE, AiiDA or pysisyphus.
"""

from .level import Level, LevelError
from .molecule import InvalidMoleculeError, ReactionInputError
from .types import Calculator, HessianMode, Outcome, Route

__all__ = [
    "Calculator",
    "HessianMode",
    "InvalidMoleculeError",
    "Level",
    "LevelError",
    "Outcome",
    "ReactionInputError",
    "Route",
]
