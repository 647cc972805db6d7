"""Real benchmark geometries: RDKit-embedded (ETKDG, fixed seed) and force-field-relaxed molecules."""

from __future__ import annotations

import numpy as np


def embed_smiles(smiles: str, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions (A) of one conformer of ``smiles`` with explicit hydrogens."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"RDKit could not embed {smiles}")
    AllChem.MMFFOptimizeMolecule(mol)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return numbers, mol.GetConformer().GetPositions()


def alkane(n_carbon: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear alkane C_n H_2n+2 (3 n + 2 atoms)."""
    return embed_smiles("C" * n_carbon)


#: Alkanes from 5 to 59 atoms, the size axis of the speed benchmark.
ALKANE_CARBONS = (1, 2, 4, 6, 8, 10, 13, 16, 19)

#: A mixed CHNO set of drug-like and small reactive molecules (10-24 atoms) for batched throughput.
MIXED_SMILES = (
    "CCO",
    "CC(=O)O",
    "c1ccccc1O",
    "CC(C)N",
    "NCC(=O)O",
    "C1CCOC1",
    "CC(=O)Nc1ccccc1",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "OCC(O)CO",
    "CC#N",
    "C=CC=O",
    "CCCCO",
    "c1ccncc1",
    "CC(C)=O",
)
