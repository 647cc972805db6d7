"""Small reactions bundled with aiida-hip (our own, built by ``scripts/make_bundled_reactions.py``).

Each folder holds ``reactant.xyz`` and ``product.xyz`` with the same atom order, relaxed at GFN2-xTB.
The five top-level ones are the examples' (and the README main job's) batch; ``extended/`` adds six
more tautomerisations for batch tests and throughput benchmarks. None of them comes from
pysisyphus's reserved ``geom_library`` sets.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent
EXTENDED = FOLDER / "extended"


def _pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    return {
        d.name: (d / "reactant.xyz", d / "product.xyz")
        for d in sorted(folder.iterdir())
        if (d / "reactant.xyz").is_file() and (d / "product.xyz").is_file()
    }


def bundled_reactions(extended: bool = False) -> dict[str, tuple[Path, Path]]:
    """Name -> (reactant file, product file), sorted by name; ``extended`` adds the eleven-reaction set's rest."""
    pairs = _pairs(FOLDER)
    if extended:
        pairs.update(_pairs(EXTENDED))
    return dict(sorted(pairs.items()))
