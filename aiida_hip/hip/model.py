"""``HIPModel``: one forward gives energy (eV), forces (eV/A) and the HIP Hessian (eV/A^2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .backbone import Backbone
from .config import HIPConfig
from .derivatives import check_step, hessian_from_forces, hessian_of_energy
from .graph import all_pairs, radius_graph, reverse_edges
from .heads import HessianHead
from .inputs import check_molecule

HESSIAN_MODES = ("predicted", "autograd", "finite-difference", None)


@dataclass
class MolecularBatch:
    """Concatenated molecules: the layout every forward pass uses."""

    numbers: Tensor  # (N,) atomic numbers
    positions: Tensor  # (N, 3) Angstrom
    batch: Tensor  # (N,) molecule index of each atom
    num_graphs: int

    @classmethod
    def from_molecules(
        cls, molecules: Sequence[tuple[np.ndarray, np.ndarray]], dtype: torch.dtype, device: torch.device | str
    ) -> MolecularBatch:
        numbers = torch.as_tensor(np.concatenate([np.asarray(z) for z, _ in molecules]), dtype=torch.long)
        positions = torch.as_tensor(np.concatenate([np.asarray(p) for _, p in molecules]), dtype=dtype)
        sizes = torch.tensor([len(z) for z, _ in molecules])
        batch = torch.repeat_interleave(torch.arange(len(molecules)), sizes)
        return cls(numbers.to(device), positions.to(device), batch.to(device), len(molecules))

    @classmethod
    def replicas(
        cls, numbers: np.ndarray, positions: Tensor, dtype: torch.dtype, device: torch.device | str
    ) -> MolecularBatch:
        """``B`` geometries (B, N, 3) of one molecule with atomic numbers ``numbers`` (N,)."""
        count, n = positions.shape[:2]
        numbers = torch.as_tensor(numbers, dtype=torch.long).repeat(count)  # (B N,)
        batch = torch.repeat_interleave(torch.arange(count), n)  # (B N,)
        flat = positions.reshape(-1, 3).to(dtype)  # (B N, 3)
        return cls(numbers.to(device), flat.to(device), batch.to(device), count)

    @property
    def sizes(self) -> Tensor:
        return torch.bincount(self.batch, minlength=self.num_graphs)


def hessian_layout(batch: Tensor, num_graphs: int, pair_index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Flat indices that place 3x3 blocks into concatenated row-major per-molecule 3N x 3N matrices.

    Returns ``(pair_flat (P, 3, 3), diag_flat (N, 3, 3), ptr (G + 1,))`` where molecule ``g`` occupies
    ``flat[ptr[g]:ptr[g+1]]`` reshaped to ``(3 n_g, 3 n_g)``.
    """
    sizes = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=batch.device)
    ptr[1:] = torch.cumsum(9 * sizes**2, 0)
    first = torch.cumsum(sizes, 0) - sizes
    local = torch.arange(batch.numel(), device=batch.device) - first[batch]
    ab = torch.arange(3, device=batch.device)

    def flat(rows_atom: Tensor, cols_atom: Tensor, graph: Tensor) -> Tensor:
        n3 = 3 * sizes[graph]
        r = 3 * local[rows_atom][:, None, None] + ab[None, :, None]
        c = 3 * local[cols_atom][:, None, None] + ab[None, None, :]
        return ptr[graph][:, None, None] + r * n3[:, None, None] + c

    src, dst = pair_index
    atoms = torch.arange(batch.numel(), device=batch.device)
    return flat(dst, src, batch[dst]), flat(atoms, atoms, batch), ptr


def build_model(config: HIPConfig | None = None, dtype: torch.dtype = torch.float32) -> HIPModel:
    """A random-init model whose every constant is in ``dtype``.

    ``model.double()`` converts parameters and buffers but not some constants that e3nn bakes in
    at construction; building under the target default dtype makes float64 models exact.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return HIPModel(config)
    finally:
        torch.set_default_dtype(previous)


class HIPModel(nn.Module):
    """Equivariant backbone (energy, forces) + HIP Hessian head.

    ``atomic_energies`` (eV per element), ``energy_scale`` and ``hessian_scale`` are buffers set from
    the training data, so a checkpoint's state dict restores them.
    """

    def __init__(self, config: HIPConfig | None = None) -> None:
        super().__init__()
        self.config = config or HIPConfig()
        self.backbone = Backbone(self.config)
        self.hessian_head = HessianHead(self.config, self.backbone.irreps_hidden, self.backbone.edges.irreps_sh)
        table = torch.full((119,), -1, dtype=torch.long)
        table[list(self.config.elements)] = torch.arange(len(self.config.elements))
        self.register_buffer("species_index", table, persistent=False)
        self.register_buffer("atomic_energies", torch.zeros(len(self.config.elements)))
        self.register_buffer("energy_scale", torch.tensor(1.0))
        self.register_buffer("hessian_scale", torch.tensor(1.0))

    # ------------------------------------------------------------------ core forward
    @property
    def dtype(self) -> torch.dtype:
        return self.atomic_energies.dtype

    @property
    def device(self) -> torch.device:
        return self.atomic_energies.device

    def species(self, numbers: Tensor) -> Tensor:
        idx = self.species_index[numbers]
        if (idx < 0).any():
            bad = sorted(set(numbers[idx < 0].tolist()))
            raise ValueError(f"unsupported element(s) {bad}; this model knows {list(self.config.elements)}")
        return nn.functional.one_hot(idx, len(self.config.elements)).to(self.dtype)

    def energy(self, data: MolecularBatch, positions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Molecular energies (G,) in eV, plus node features and the edge index for the head."""
        pos = data.positions if positions is None else positions
        species = self.species(data.numbers)
        edge_index = radius_graph(pos, data.batch, data.num_graphs, self.config.cutoff)
        h, atom_energy = self.backbone(species, pos, edge_index)
        atom_energy = self.energy_scale * atom_energy + self.atomic_energies[self.species_index[data.numbers]]
        energy = torch.zeros(data.num_graphs, dtype=pos.dtype, device=pos.device).index_add(0, data.batch, atom_energy)
        return energy, h, edge_index

    def hessian_blocks(self, data: MolecularBatch, h: Tensor, edge_index: Tensor) -> dict[str, Tensor]:
        """Run the HIP head: symmetric blocks and their flat per-molecule layout."""
        pos = data.positions
        species = self.species(data.numbers)
        if self.config.hessian_cutoff is None:
            pairs = all_pairs(data.batch, data.num_graphs)
        else:
            pairs = radius_graph(pos, data.batch, data.num_graphs, self.config.hessian_cutoff)
        reverse = reverse_edges(pairs, pos.shape[0])
        sh, basis = self.backbone.edges(pos, edge_index)
        atoms_per_molecule = data.sizes[data.batch]  # (N,)
        off, diag = self.hessian_head(h, species, pos, edge_index, sh, basis, pairs, reverse, atoms_per_molecule)
        off, diag = self.hessian_scale * off, self.hessian_scale * diag
        pair_flat, diag_flat, ptr = hessian_layout(data.batch, data.num_graphs, pairs)
        flat = torch.zeros(int(ptr[-1]), dtype=off.dtype, device=off.device)
        flat = flat.index_add(0, pair_flat.reshape(-1), off.reshape(-1))
        flat = flat.index_add(0, diag_flat.reshape(-1), diag.reshape(-1))
        return {
            "hessian_flat": flat,
            "hessian_ptr": ptr,
            "hessian_pairs": pairs,
            "hessian_offdiag": off,
            "hessian_diag": diag,
        }

    def forward(
        self,
        data: MolecularBatch,
        compute_forces: bool = True,
        compute_hessian: bool = True,
        create_graph: bool = False,
    ) -> dict[str, Tensor]:
        """Energy (G,), forces (N, 3) and, if asked, the HIP Hessian (flat layout, see ``hessian_layout``).

        ``create_graph=True`` keeps the force graph for training on forces. For inference the head
        runs on detached features: the Hessian needs no derivative.
        """
        pos = data.positions
        if compute_forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        with torch.set_grad_enabled(torch.is_grad_enabled() or compute_forces):
            energy, h, edge_index = self.energy(data, pos)
            out = {"energy": energy}
            if compute_forces:
                (grad,) = torch.autograd.grad(
                    energy.sum(), pos, create_graph=create_graph, retain_graph=create_graph or None
                )
                out["forces"] = -grad
        if compute_hessian:
            if not create_graph:
                h = h.detach()
            out.update(self.hessian_blocks(data, h, edge_index.detach()))
        return out

    # ------------------------------------------------------------------ numpy API
    def _molecule(self, numbers, positions, name: str = "molecule") -> tuple[np.ndarray, np.ndarray]:
        return check_molecule(numbers, positions, self.config.elements, self.config.min_distance, name)

    @staticmethod
    def split_hessians(out: dict[str, Tensor], sizes: Sequence[int]) -> list[Tensor]:
        ptr = out["hessian_ptr"]
        return [out["hessian_flat"][ptr[g] : ptr[g + 1]].view(3 * n, 3 * n) for g, n in enumerate(sizes)]

    def predict(
        self, numbers, positions, hessian: str | None = "predicted", fd_step: float = 1e-3, forces: bool = True
    ) -> dict:
        """One molecule, numpy in and out: ``energy`` (eV), ``forces`` (N, 3) eV/A, ``hessian`` (3N, 3N) eV/A^2.

        ``hessian`` is ``"predicted"`` (HIP head), ``"autograd"`` (second derivative of the energy),
        ``"finite-difference"`` (central differences of the forces, step ``fd_step`` A) or ``None``.
        ``forces=False`` skips the backward pass (``forces`` is then None): a search on another surface
        that only wants HIP's Hessian pays half as much per call.
        """
        return self.predict_batch([(numbers, positions)], hessian=hessian, fd_step=fd_step, forces=forces)[0]

    def predict_batch(
        self,
        molecules: Sequence[tuple],
        hessian: str | None = "predicted",
        fd_step: float = 1e-3,
        forces: bool = True,
    ) -> list[dict]:
        """Several molecules of any sizes in one batched forward (autograd/FD Hessians loop per molecule)."""
        if hessian not in HESSIAN_MODES:
            raise ValueError(f"hessian must be one of {HESSIAN_MODES}, got {hessian!r}")
        if len(molecules) == 0:
            return []
        mols = [self._molecule(z, p, name=f"molecule {k}") for k, (z, p) in enumerate(molecules)]
        data = MolecularBatch.from_molecules(mols, self.dtype, self.device)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(not forces):
                out = self(data, compute_forces=forces, compute_hessian=hessian == "predicted")
            sizes = [len(z) for z, _ in mols]
            hessians: list[Tensor | None] = [None] * len(mols)
            if hessian == "predicted":
                hessians = self.split_hessians(out, sizes)
            elif hessian is not None:
                for k, (z, p) in enumerate(mols):
                    if hessian == "autograd":
                        hessians[k] = self.autograd_hessian(z, p)
                    else:
                        hessians[k] = self.finite_difference_hessian(z, p, step=fd_step)
        finally:
            self.train(was_training)
        all_forces = out["forces"].detach().cpu().numpy().astype(np.float64) if forces else None
        first = np.cumsum([0, *sizes])
        results = []
        for k in range(len(mols)):
            res = {
                "energy": float(out["energy"][k].detach()),
                "forces": None if all_forces is None else all_forces[first[k] : first[k + 1]],
                "hessian": None if hessians[k] is None else hessians[k].detach().cpu().numpy().astype(np.float64),
            }
            results.append(res)
        return results

    # ------------------------------------------------------------------ reference Hessians
    def autograd_hessian(self, numbers, positions, vectorized: bool = False) -> Tensor:
        """d^2E/dx^2 (3N, 3N) in eV/A^2 of one molecule by double backpropagation.

        ``vectorized=False`` takes one Hessian-vector product per row (3N backward passes);
        ``vectorized=True`` batches them with ``torch.vmap`` (``is_grads_batched``), which uses more memory.
        """
        z, pos = self._molecule(numbers, positions)
        data = MolecularBatch.from_molecules([(z, pos)], self.dtype, self.device)
        return hessian_of_energy(lambda x: self.energy(data, x)[0], data.positions, vectorized=vectorized)

    def finite_difference_hessian(self, numbers, positions, step: float = 1e-3, chunk: int = 64) -> Tensor:
        """Central differences of the model forces (3N, 3N) in eV/A^2, step ``step`` A, symmetrised.

        All 6N displaced geometries are evaluated as batches of ``chunk`` molecules.
        """
        check_step(step)
        z, pos = self._molecule(numbers, positions)

        def forces(geometries: Tensor) -> Tensor:  # (B, N, 3) -> (B, N, 3)
            data = MolecularBatch.replicas(z, geometries, self.dtype, self.device)
            out = self(data, compute_forces=True, compute_hessian=False)
            return out["forces"].reshape(geometries.shape)

        return hessian_from_forces(forces, torch.as_tensor(pos), step=step, chunk=chunk)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
