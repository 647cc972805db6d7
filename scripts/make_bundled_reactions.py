"""Build the small reactions bundled with aiida-hip (examples, the main job) with our own machinery.

Each reaction is found among the bond-change moves of its reactant (``aiida_hip.dataset.reactions``),
both ends are embedded with RDKit, relaxed with GFN2-xTB and aligned (``aiida_hip.dataset.paths``),
then written to ``aiida_hip/reactions/<name>/{reactant,product}.xyz``. The two test reactions
(``tests/data/reactions``) are copied as they are; ``EXTENDED`` goes to ``aiida_hip/reactions/extended``.
Usage: python scripts/make_bundled_reactions.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write
from rdkit import Chem

from aiida_hip.dataset.paths import endpoints
from aiida_hip.dataset.reactions import enumerate_reactions

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "aiida_hip" / "reactions"
REACTIONS = {
    "vinyl_alcohol_acetaldehyde": ("C=CO", "CC=O"),
    "formamide_formimidic_acid": ("NC=O", "N=CO"),
    "glycolaldehyde_enediol": ("OCC=O", "OC=CO"),
}
#: more small tautomerisations (``aiida_hip/reactions/extended``): batch tests and throughput benchmarks
EXTENDED = {
    "isocyanic_cyanic_acid": ("N=C=O", "N#CO"),
    "nitrosomethane_formaldoxime": ("CN=O", "C=NO"),
    "cyanamide_carbodiimide": ("NC#N", "N=C=N"),
    "acetamide_acetimidic_acid": ("CC(N)=O", "CC(=N)O"),
    "propanal_propenol": ("CCC=O", "CC=CO"),
    "acetone_propen2ol": ("CC(C)=O", "C=C(C)O"),
}


def main() -> None:
    for name in ("hcn_hnc", "ch3nc_ch3cn"):
        dest = TARGET / name
        dest.mkdir(parents=True, exist_ok=True)
        for side in ("reactant", "product"):
            shutil.copy(ROOT / "tests" / "data" / "reactions" / name / f"{side}.xyz", dest / f"{side}.xyz")
    for name, (reactant, product) in [*REACTIONS.items(), *EXTENDED.items()]:
        target = TARGET / "extended" if name in EXTENDED else TARGET
        product = Chem.MolToSmiles(Chem.MolFromSmiles(product))
        found = [
            r
            for r in enumerate_reactions(reactant, np.random.default_rng(0), max_reactions=500)
            if r.product_smiles == product
        ]
        if not found:
            raise SystemExit(f"{name}: {reactant} >> {product} is not among the enumerated moves")
        found.sort(key=lambda r: len(r.broken) + len(r.formed))  # the most elementary move
        r_pos, p_pos, _, _ = endpoints(found[0], seed=7)
        dest = target / name
        dest.mkdir(parents=True, exist_ok=True)
        for side, pos, smiles in (("reactant", r_pos, reactant), ("product", p_pos, product)):
            atoms = Atoms(numbers=found[0].numbers, positions=pos)
            atoms.info["comment"] = f"{smiles} (GFN2-xTB relaxed, aiida-hip bundled reaction {name})"
            write(dest / f"{side}.xyz", atoms)
        print(f"{name}: {reactant} >> {product}, {len(found[0].numbers)} atoms, move {found[0].move}")


if __name__ == "__main__":
    main()
