"""Gaussian convergence presets (the seed's Table 13), in Hartree/Bohr and Bohr as pysisyphus uses them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convergence:
    """All four criteria must hold: max/RMS force (Hartree/Bohr) and max/RMS step (Bohr)."""

    name: str
    max_force: float
    rms_force: float
    max_step: float
    rms_step: float
    #: The same criteria under pysisyphus's name.
    pysisyphus: str


PRESETS: dict[str, Convergence] = {
    c.name: c
    for c in (
        Convergence("loose", 2.5e-3, 1.7e-3, 1.0e-2, 6.7e-3, "gau_loose"),
        Convergence("normal", 4.5e-4, 3.0e-4, 1.8e-3, 1.2e-3, "gau"),
        Convergence("tight", 1.5e-5, 1.0e-5, 6.0e-5, 4.0e-5, "gau_tight"),
        Convergence("verytight", 2.0e-6, 1.0e-6, 6.0e-6, 4.0e-6, "gau_vtight"),
    )
}


def get_convergence(name: str) -> Convergence:
    """The preset called ``name`` (loose, normal, tight, verytight)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown convergence preset {name!r}; choose from {', '.join(PRESETS)}") from None
