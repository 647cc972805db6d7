"""File digests: what provenance, the shipped checkpoint and the committed data files are identified by."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: the checkpoint that ships with the package (named here, without torch, so that provenance and the
#: worker's input checks do not load the model to find it)
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "hip" / "weights" / "hip_default.pt"


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (checkpoints and data shards are megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
