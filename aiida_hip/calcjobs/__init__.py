"""L5: AiiDA CalcJobs that stage inputs and run ``aiida-hip-worker`` (entry points ``hip.*``)."""

from .base import HipStageCalculation, structure_from_dict, structure_to_dict, validate_molecule
from .batch import HipTSBatchCalculation
from .stages import (
    HipDFTCalculation,
    HipFreqCalculation,
    HipIRCCalculation,
    HipOptCalculation,
    HipPathCalculation,
    HipTSOptCalculation,
    validate_pair,
)

__all__ = [
    "HipDFTCalculation",
    "HipFreqCalculation",
    "HipIRCCalculation",
    "HipOptCalculation",
    "HipPathCalculation",
    "HipStageCalculation",
    "HipTSBatchCalculation",
    "HipTSOptCalculation",
    "structure_from_dict",
    "structure_to_dict",
    "validate_molecule",
    "validate_pair",
]
