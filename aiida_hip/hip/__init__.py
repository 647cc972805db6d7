"""The HIP model: an E(3)-equivariant backbone with a direct Hessian readout. Pure torch + e3nn."""

from .checkpoints import CheckpointError, load_model, save_checkpoint, sha256
from .config import HIPConfig
from .inputs import InvalidMoleculeError, check_molecule
from .model import HESSIAN_MODES, HIPModel, MolecularBatch, build_model

__all__ = [
    "HESSIAN_MODES",
    "CheckpointError",
    "HIPConfig",
    "HIPModel",
    "InvalidMoleculeError",
    "MolecularBatch",
    "build_model",
    "check_molecule",
    "load_model",
    "save_checkpoint",
    "sha256",
]
