"""Node features of a frozen backbone, computed once per geometry for the Hessian stage.

In the ``hessian`` stage the backbone does not train, yet recomputing its features took about a third of
every step on the CPU. The cache runs the backbone once over the training set, in fixed chunks of sample
indices (so the features, and hence a resumed campaign, do not depend on which batches came first), and a
step only gathers its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .data import Sample, collate
from .model import HIPModel


class BackboneFeatures:
    """Features ``h`` (n_atoms, D) of every sample, from ``model``'s backbone as it is now."""

    def __init__(
        self, model: HIPModel, samples: Sequence[Sample], device: str | torch.device = "cpu", chunk: int = 64
    ) -> None:
        self.rows: list[Tensor] = []
        self._position = {id(s): k for k, s in enumerate(samples)}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for start in range(0, len(samples), chunk):
                part = samples[start : start + chunk]
                data, _ = collate(part, model.dtype, device)
                _, h, _ = model.energy(data)  # (N, D)
                self.rows += list(h.split([s.n_atoms for s in part]))
        model.train(was_training)

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, indices: Sequence[int]) -> Tensor:
        """The features of a batch, in the order :func:`collate` stacks its atoms: (N, D)."""
        return torch.cat([self.rows[i] for i in indices])

    def of(self, chunk: Sequence[Sample]) -> Tensor:
        """:meth:`gather` for a batch given as the samples themselves (those the cache was built on)."""
        return self.gather([self._position[id(s)] for s in chunk])

    @property
    def nbytes(self) -> int:
        return sum(r.numel() * r.element_size() for r in self.rows)
