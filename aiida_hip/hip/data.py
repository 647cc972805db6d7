"""Labelled geometries from the HDF5 dataset (one group per reaction) -> batches for training.

The file layout is written by ``aiida_hip.dataset.generate``; this reader needs only h5py, so the
model layer stays free of chemistry codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .model import MolecularBatch


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or not in the aiida-hip layout."""


@dataclass
class Sample:
    """One labelled geometry: eV, Angstrom, eV/A, eV/A^2 (``hessian`` None: energy and forces only)."""

    numbers: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    hessian: np.ndarray | None
    reaction: str
    kind: str
    #: NEB barrier (eV above the reactant) of the sample's reaction, where the file records it
    barrier: float | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)


def load_samples(path: str | Path, split: str | None = None, kinds: Sequence[str] | None = None) -> list[Sample]:
    """All geometries of the reactions in ``split`` (``train``/``val``/``test``; ``None``: every split)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    samples: list[Sample] = []
    try:
        with h5py.File(path, "r") as h5:
            if "reactions" not in h5:
                raise DatasetError(f"{path} has no 'reactions' group: not an aiida-hip dataset")
            for rid, g in h5["reactions"].items():
                if g.attrs.get("status") != "ok" or (split is not None and g.attrs.get("split") != split):
                    continue
                numbers = g["numbers"][()].astype(np.int64)
                pos, energy, forces = g["positions"][()], g["energy"][()], g["forces"][()]
                hess = g["hessian"][()] if "hessian" in g else _unpack_hessians(g["hessian_triu"][()], 3 * len(numbers))
                kind = [k.decode() for k in g["kind"][()]]
                barrier = float(g.attrs["barrier_ev"]) if "barrier_ev" in g.attrs else None
                for m in range(len(energy)):
                    if kinds is not None and kind[m] not in kinds:
                        continue
                    samples.append(
                        Sample(
                            numbers,
                            pos[m].astype(np.float64),
                            float(energy[m]),
                            forces[m].astype(np.float64),
                            hess[m].astype(np.float64),
                            rid,
                            kind[m],
                            barrier,
                        )
                    )
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable aiida-hip HDF5 dataset: {exc}") from exc
    return samples


def _unpack_hessians(triu: np.ndarray, n: int) -> np.ndarray:
    rows, cols = np.triu_indices(n)
    out = np.zeros((len(triu), n, n), dtype=np.float32)
    out[:, rows, cols] = triu
    out[:, cols, rows] = triu
    return out


def pack_dataset(source: str | Path, target: str | Path, hessian_dtype: str = "float16") -> dict:
    """A compact copy for moving to a training machine: upper-triangle Hessians in ``hessian_dtype``.

    float16 keeps about 3.3 significant digits (relative error <= 4.9e-4), far below the
    finite-difference noise and the model error; the reader restores full symmetric matrices.
    """
    rows = None
    counts = {"reactions": 0, "geometries": 0}
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        if "reactions" not in src:
            raise DatasetError(f"{source} has no 'reactions' group: not an aiida-hip dataset")
        dst.attrs.update({k: v for k, v in src.attrs.items()})
        dst.attrs["packed"] = f"upper-triangle Hessians in {hessian_dtype}"
        out = dst.create_group("reactions")
        for rid, g in src["reactions"].items():
            if g.attrs.get("status") != "ok":
                continue
            n = 3 * len(g["numbers"])
            rows = np.triu_indices(n)
            h = out.create_group(rid)
            h.attrs.update(dict(g.attrs))
            for name in ("numbers", "kind", "energy"):
                h.create_dataset(name, data=g[name][()])
            h.create_dataset("positions", data=g["positions"][()].astype(np.float32))
            h.create_dataset("forces", data=g["forces"][()].astype(np.float32))
            triu = g["hessian"][()][:, rows[0], rows[1]].astype(hessian_dtype)
            h.create_dataset("hessian_triu", data=triu, compression="gzip", compression_opts=6, shuffle=True)
            counts["reactions"] += 1
            counts["geometries"] += len(g["energy"])
    return counts


def collate(samples: Sequence[Sample], dtype: torch.dtype, device: torch.device | str) -> tuple[MolecularBatch, dict]:
    """A :class:`MolecularBatch` and its targets (energy (G,), forces (N, 3), flat Hessians).

    ``hessian_flat`` only when every sample has a Hessian: energy+force samples train the backbone alone.
    """
    data = MolecularBatch.from_molecules([(s.numbers, s.positions) for s in samples], dtype, device)
    targets = {
        "energy": torch.tensor([s.energy for s in samples], dtype=dtype, device=device),
        "forces": torch.as_tensor(np.concatenate([s.forces for s in samples]), dtype=dtype, device=device),
    }
    if all(s.hessian is not None for s in samples):
        flat = np.concatenate([s.hessian.reshape(-1) for s in samples])  # (sum 9 n_i^2,)
        targets["hessian_flat"] = torch.as_tensor(flat, dtype=dtype, device=device)
    return data, targets


def batches(samples: Sequence[Sample], batch_size: int, rng: np.random.Generator | None = None):
    """Index lists of ``batch_size`` samples, shuffled when ``rng`` is given."""
    order = np.arange(len(samples)) if rng is None else rng.permutation(len(samples))
    for start in range(0, len(order), batch_size):
        yield [samples[i] for i in order[start : start + batch_size]]
