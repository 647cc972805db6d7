"""Do the IRC ends connect the intended reactant and product? Molecular-graph isomorphism (pymatgen)."""

from __future__ import annotations

from dataclasses import dataclass

from ase import Atoms
from pymatgen.analysis.graphs import MoleculeGraph
from pymatgen.core import Molecule

from ..chem.geometry import BOND_SCALE, connectivity
from ..common.types import Outcome


def molecule_graph(atoms: Atoms, scale: float = BOND_SCALE):
    """pymatgen ``MoleculeGraph`` with bonds from covalent radii (``scale`` x sum of radii)."""
    molecule = Molecule(atoms.get_chemical_symbols(), atoms.positions)
    edges = {(i, j): None for i, j in sorted(connectivity(atoms.numbers, atoms.positions, scale))}
    return MoleculeGraph.from_edges(molecule, edges)


def same_molecule(a: Atoms, b: Atoms, scale: float = BOND_SCALE) -> bool:
    """Same species and isomorphic bond graphs (atom order may differ: symmetry-equivalent atoms)."""
    if sorted(a.numbers.tolist()) != sorted(b.numbers.tolist()):
        return False
    return molecule_graph(a, scale).isomorphic_to(molecule_graph(b, scale))


def bonds(atoms: Atoms, scale: float = BOND_SCALE) -> list[list[int]]:
    return [list(e) for e in sorted(connectivity(atoms.numbers, atoms.positions, scale))]


@dataclass
class EndpointResult:
    """``intended``: the ends are the reactant and the product; ``unintended``: a different reaction
    (both graphs reported); ``same_ends``: both ends are the same molecule, so the TS connects nothing."""

    verdict: str
    forward_is: str
    backward_is: str
    forward_bonds: list
    backward_bonds: list
    message: str

    @property
    def intended(self) -> bool:
        return self.verdict == "intended"

    @property
    def outcome(self) -> Outcome:
        return {"intended": Outcome.SUCCESS, "same_ends": Outcome.IRC_SAME_ENDS}.get(
            self.verdict, Outcome.IRC_UNINTENDED
        )

    def summary(self) -> dict:
        return dict(self.__dict__)


def compare_endpoints(reactant: Atoms, product: Atoms, forward_end: Atoms, backward_end: Atoms) -> EndpointResult:
    """Atom-mapped bonds first (so degenerate rearrangements, reactant == product up to atom labels, are
    told apart), then graph isomorphism (symmetry-equivalent atoms may trade places)."""
    r_bonds = connectivity(reactant.numbers, reactant.positions)
    p_bonds = connectivity(product.numbers, product.positions)
    degenerate = same_molecule(reactant, product)

    def which(end: Atoms) -> str:
        bonds_ = connectivity(end.numbers, end.positions)
        if bonds_ == r_bonds and bonds_ != p_bonds:
            return "reactant"
        if bonds_ == p_bonds and bonds_ != r_bonds:
            return "product"
        if degenerate:  # isomorphism cannot tell the two apart
            return "other"
        if same_molecule(end, reactant):
            return "reactant"
        if same_molecule(end, product):
            return "product"
        return "other"

    f, b = which(forward_end), which(backward_end)
    if {f, b} == {"reactant", "product"}:
        verdict, message = "intended", "the IRC connects the reactant and the product"
    elif (f == b and f != "other") or (f == b == "other" and same_molecule(forward_end, backward_end)):
        verdict, message = "same_ends", f"both IRC ends relax to the same molecule ({f})"
    else:
        verdict, message = "unintended", f"the IRC connects {b} and {f}, not the reactant and the product"
    return EndpointResult(verdict, f, b, bonds(forward_end), bonds(backward_end), message)
