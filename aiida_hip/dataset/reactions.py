"""Elementary reactions enumerated by bond changes on a molecular graph.

Moves (reactant bonds -> product bonds): break one / form one (migrations, e.g. hydrogen shifts),
break two / form two (concerted exchanges), break two / form one (eliminations), break one
(ring openings), form one (ring closures). A product is kept when every atom stays within its
valence and a closed-shell neutral bond-order assignment exists (found by a small b-matching
search), so double and triple bonds shift as the chemistry requires.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem

VALENCE = {1: 1, 6: 4, 7: 3, 8: 2}


@dataclass(frozen=True)
class Reaction:
    """One reaction of a reactant molecule: atom order and indices are shared by both sides."""

    reactant_smiles: str
    product_smiles: str
    numbers: tuple[int, ...]
    reactant_bonds: dict = field(hash=False, compare=False)  # (i, j) -> order
    product_bonds: dict = field(hash=False, compare=False)
    move: str = ""
    broken: tuple = ()
    formed: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.reactant_smiles}>>{self.product_smiles}"


def _bond_orders(numbers: list[int], edges: set[tuple[int, int]]) -> dict | None:
    """A neutral closed-shell bond-order assignment for the graph, or None (b-matching by backtracking)."""
    free = [VALENCE[z] for z in numbers]
    for i, j in edges:
        free[i] -= 1
        free[j] -= 1
    if min(free) < 0 or sum(free) % 2:
        return None
    orders = dict.fromkeys(edges, 1)
    nbrs: dict[int, list[int]] = {i: [] for i in range(len(numbers))}
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)

    def solve() -> bool:
        open_atoms = [i for i, f in enumerate(free) if f > 0]
        if not open_atoms:
            return True
        # Most constrained atom first: fewest neighbours that can still take a bond order.
        i = min(open_atoms, key=lambda a: sum(1 for b in nbrs[a] if free[b] > 0))
        for j in nbrs[i]:
            e = (min(i, j), max(i, j))
            if free[j] > 0 and orders[e] < 3:
                free[i] -= 1
                free[j] -= 1
                orders[e] += 1
                if solve():
                    return True
                free[i] += 1
                free[j] += 1
                orders[e] -= 1
        return False

    return orders if solve() else None


def molecule_from_graph(numbers: list[int], orders: dict):
    """RDKit molecule with the given atoms (same order) and bond orders."""
    types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    rw = Chem.RWMol()
    for z in numbers:
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    for (i, j), order in orders.items():
        rw.AddBond(int(i), int(j), types[order])
    mol = rw.GetMol()
    Chem.SanitizeMol(mol)
    return mol


def canonical_smiles(numbers: list[int], orders: dict) -> str | None:
    try:
        mol = molecule_from_graph(numbers, orders)
        return Chem.MolToSmiles(Chem.RemoveHs(mol))
    except Exception:
        return None


def _acceptable(numbers: list[int], orders: dict) -> bool:
    """Reject products no chemist would draw: lone heavy atoms, strained multiple bonds in small rings."""
    try:
        mol = molecule_from_graph(numbers, orders)
    except Exception:
        return False
    frags = Chem.GetMolFrags(mol, asMols=False)
    if any(len(f) == 1 for f in frags):
        return False
    ring_info = mol.GetRingInfo()
    for ring in ring_info.BondRings():
        for b in ring:
            bond = mol.GetBondWithIdx(b)
            if bond.GetBondType() == Chem.BondType.TRIPLE or (
                len(ring) <= 4
                and bond.GetBondType() == Chem.BondType.DOUBLE
                and len(ring) == 3
                and any(
                    mol.GetAtomWithIdx(a).GetAtomicNum() != 6 for a in (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
                )
            ):
                return False
    return all(len(r) >= 3 for r in ring_info.AtomRings())


def enumerate_reactions(
    smiles: str, rng: np.random.Generator, max_reactions: int = 12, max_distance: int = 4
) -> list[Reaction]:
    """Distinct products of ``smiles`` under the moves above, a random subset of at most ``max_reactions``.

    New bonds join atoms at most ``max_distance`` bonds apart, so the reactions are intramolecular
    and local, as elementary steps are.
    """
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    Chem.Kekulize(mol, clearAromaticFlags=True)
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    if any(z not in VALENCE for z in numbers):
        raise ValueError(f"{smiles}: only H, C, N, O are supported")
    if any(a.GetFormalCharge() for a in mol.GetAtoms()):
        return []  # zwitterionic drawings (e.g. nitro groups) have no neutral closed-shell graph here
    bonds = {}
    for b in mol.GetBonds():
        i, j = sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        bonds[(i, j)] = round(b.GetBondTypeAsDouble())
    edges = set(bonds)
    dist = Chem.GetDistanceMatrix(mol)
    reactant_smiles = canonical_smiles(numbers, bonds) or smiles
    n = len(numbers)
    # Candidate new bonds: atoms 2..max_distance bonds apart (H...H only when close, as in H2 loss).
    near = [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if (i, j) not in edges
        and 2 <= dist[i, j] <= max_distance
        and not (numbers[i] == numbers[j] == 1 and dist[i, j] > 3)
    ]
    bond_list = sorted(edges)

    candidates: list[tuple[str, tuple, tuple]] = []
    for b in bond_list:  # break one, form one (migration) and break one (ring opening)
        candidates.append(("b1", (b,), ()))
        for f in near:
            if set(f) & set(b):
                candidates.append(("b1f1", (b,), (f,)))
    for b1, b2 in itertools.combinations(bond_list, 2):
        atoms = sorted(set(b1) | set(b2))
        if len(atoms) != 4:
            continue
        (a, bb), (c, d) = b1, b2
        for f1, f2 in (((a, c), (bb, d)), ((a, d), (bb, c))):
            f1, f2 = tuple(sorted(f1)), tuple(sorted(f2))
            if f1 not in edges and f2 not in edges:
                candidates.append(("b2f2", (b1, b2), (f1, f2)))
            for f in (f1, f2):
                if f not in edges and dist[f] <= max_distance:
                    candidates.append(("b2f1", (b1, b2), (f,)))
    for f in near:  # ring closure
        if dist[f] >= 3:
            candidates.append(("f1", (), (f,)))

    order = rng.permutation(len(candidates))
    seen, out = {reactant_smiles}, []
    for k in order:
        move, broken, formed = candidates[k]
        new_edges = (edges - set(broken)) | set(formed)
        orders = _bond_orders(numbers, new_edges)
        if orders is None or not _acceptable(numbers, orders):
            continue
        product = canonical_smiles(numbers, orders)
        if product is None or product in seen:
            continue
        seen.add(product)
        out.append(Reaction(reactant_smiles, product, tuple(numbers), dict(bonds), orders, move, broken, formed))
        if len(out) >= max_reactions:
            break
    return out


def read_smiles_file(path) -> list[tuple[str, str]]:
    """``(smiles, name)`` pairs from a file of ``SMILES name`` lines (``#`` comments)."""
    rows = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            parts = line.split()
            rows.append((parts[0], parts[1] if len(parts) > 1 else parts[0]))
    return rows
