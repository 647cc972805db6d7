"""Small reactions bundled with aiida-hip (our own, built by ``scripts/make_bundled_reactions.py``).

Each folder holds ``reactant.xyz`` and ``product.xyz`` with the same atom order, relaxed at GFN2-xTB.
None of them comes from pysisyphus's reserved ``geom_library`` sets.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent


def bundled_reactions() -> dict[str, tuple[Path, Path]]:
    """Name -> (reactant file, product file), sorted by name."""
    return {
        d.name: (d / "reactant.xyz", d / "product.xyz")
        for d in sorted(FOLDER.iterdir())
        if (d / "reactant.xyz").is_file() and (d / "product.xyz").is_file()
    }
