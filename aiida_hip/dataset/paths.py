"""3D endpoints and approximate minimum-energy paths at GFN2-xTB: RDKit embedding, xTB relaxation, CI-NEB."""

from __future__ import annotations

import contextlib

import numpy as np
from ase import Atoms
from ase.data import atomic_masses
from ase.mep import NEB
from ase.optimize import BFGS, FIRE
from rdkit import Chem
from rdkit.Chem import AllChem

from ..chem.geometry import BOND_SCALE, connectivity, kabsch_align
from .reactions import Reaction, molecule_from_graph

__all__ = ["BOND_SCALE", "SkipReaction", "connectivity", "embed", "endpoints", "kabsch_align", "neb_path", "relax"]


class SkipReaction(RuntimeError):
    """The reaction cannot give a usable path (say why); the generator records it and moves on."""


def xtb_calculator(robust: bool = False):
    """ASE calculator for GFN2-xTB; ``robust`` trades SCF speed for convergence on strained images."""
    from tblite.ase import TBLite

    if robust:
        return TBLite(method="GFN2-xTB", verbosity=0, max_iterations=300, mixer_damping=0.3)
    return TBLite(method="GFN2-xTB", verbosity=0)


def _embed_mol(mol, seed: int) -> np.ndarray:
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if mol.GetNumAtoms() == 1:
        return np.zeros((1, 3))
    if AllChem.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mol, params) != 0:
            raise SkipReaction("RDKit could not embed the structure")
    with contextlib.suppress(Exception):  # MMFF lacks parameters for some strained products
        AllChem.MMFFOptimizeMolecule(mol, maxIters=500)
    return mol.GetConformer().GetPositions()


def embed(numbers, orders: dict, seed: int, reference: np.ndarray | None = None) -> np.ndarray:
    """RDKit ETKDG + MMFF geometry with the atom order kept; one fragment at a time.

    With ``reference`` positions (the reactant), every fragment is aligned onto its own atoms there,
    so a product starts where the reactant's atoms are, and overlapping fragments are pushed apart.
    """
    numbers = np.asarray(numbers)
    mol = molecule_from_graph(list(numbers), orders)
    fragments = Chem.GetMolFrags(mol, asMols=False)
    if reference is None and len(fragments) == 1:
        return _embed_mol(mol, seed)
    positions = np.zeros((len(numbers), 3))
    offset = 0.0
    for atoms in fragments:
        atoms = list(atoms)
        sub = molecule_from_graph(
            [int(numbers[a]) for a in atoms],
            {(atoms.index(i), atoms.index(j)): o for (i, j), o in orders.items() if i in atoms and j in atoms},
        )
        xyz = _embed_mol(sub, seed) if len(atoms) > 1 else np.zeros((1, 3))
        if reference is not None and len(atoms) > 2:
            xyz = kabsch_align(xyz, reference[atoms], atomic_masses[numbers[atoms]])
        elif reference is not None:
            xyz = xyz - xyz.mean(0) + reference[atoms].mean(0)
        else:
            xyz = xyz - xyz.mean(0) + np.array([offset, 0.0, 0.0])
            offset += 4.0 + np.ptp(xyz[:, 0])
        positions[atoms] = xyz
    return _separate(positions, fragments)


def _separate(positions: np.ndarray, fragments, gap: float = 1.8, rounds: int = 50) -> np.ndarray:
    """Push fragments apart along their centre-of-geometry axis until no two atoms are closer than ``gap``."""
    positions = positions.copy()
    frags = [list(f) for f in fragments]
    for _ in range(rounds):
        moved = False
        for a in range(len(frags)):
            for b in range(a + 1, len(frags)):
                pa, pb = positions[frags[a]], positions[frags[b]]
                d = np.linalg.norm(pa[:, None] - pb[None], axis=-1).min()
                if d < gap:
                    axis = pb.mean(0) - pa.mean(0)
                    norm = np.linalg.norm(axis)
                    axis = axis / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
                    positions[frags[b]] += 0.5 * (gap - d + 0.1) * axis
                    positions[frags[a]] -= 0.5 * (gap - d + 0.1) * axis
                    moved = True
        if not moved:
            break
    return positions


def relax(numbers, positions, fmax: float = 0.02, steps: int = 400) -> tuple[np.ndarray, float]:
    """xTB minimisation (ASE BFGS); returns positions and energy (eV)."""
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = xtb_calculator()
    try:
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
        return atoms.positions.copy(), float(atoms.get_potential_energy())
    except Exception as exc:
        raise SkipReaction(f"xTB relaxation failed: {exc}") from exc


def endpoints(reaction: Reaction, seed: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Relaxed reactant and product (aligned onto the reactant) and their energies (eV)."""
    numbers = np.array(reaction.numbers)
    r_pos, e_r = relax(numbers, embed(numbers, reaction.reactant_bonds, seed))
    if connectivity(numbers, r_pos) != set(reaction.reactant_bonds):
        raise SkipReaction("reactant changes connectivity on xTB relaxation")
    p_pos, e_p = relax(numbers, embed(numbers, reaction.product_bonds, seed, reference=r_pos))
    if connectivity(numbers, p_pos) != set(reaction.product_bonds):
        raise SkipReaction("product is not a minimum with the intended connectivity at xTB")
    return r_pos, kabsch_align(p_pos, r_pos, atomic_masses[numbers]), e_r, e_p


def neb_path(
    numbers,
    reactant: np.ndarray,
    product: np.ndarray,
    n_images: int = 9,
    fmax: float = 0.15,
    steps: int = 250,
    snapshot_every: int = 40,
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Climbing-image NEB (IDPP start) at xTB: final images, their energies, and earlier snapshots.

    The snapshots (interior images every ``snapshot_every`` steps) add off-path geometries near the
    reaction channel to the data.
    """
    images = [Atoms(numbers=numbers, positions=reactant)]
    images += [Atoms(numbers=numbers, positions=reactant) for _ in range(n_images - 2)]
    images.append(Atoms(numbers=numbers, positions=product))
    for image in images:
        image.calc = xtb_calculator(robust=True)
    neb = NEB(images, climb=True, method="improvedtangent", allow_shared_calculator=False)
    try:
        neb.interpolate("idpp")
    except Exception as exc:
        raise SkipReaction(f"IDPP interpolation failed: {exc}") from exc
    snapshots: list[np.ndarray] = []
    opt = FIRE(neb, logfile=None)

    def snap() -> None:
        if opt.nsteps and opt.nsteps % snapshot_every == 0:
            snapshots.extend(im.positions.copy() for im in images[1:-1])

    opt.attach(snap)
    try:
        opt.run(fmax=fmax, steps=steps)
        energies = np.array([im.get_potential_energy() for im in images])
    except Exception as exc:
        raise SkipReaction(f"NEB failed at xTB: {exc}") from exc
    return [im.positions.copy() for im in images], energies, snapshots
