"""The DFT check of a stationary point (the seed's verification): PySCF analytic Hessian, the number
of imaginary modes, and the RMS force below 2e-3 Hartree/Bohr."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..chem.reference import DFTReference, ReferenceError
from ..chem.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
from ..chem.vibrations import IMAGINARY_THRESHOLD, analyse
from ..common.types import Outcome

#: the seed's DFT check of a TS: RMS force below 2e-3 Hartree/Bohr
DFT_FORCE_RMS_MAX = 2e-3


@dataclass(frozen=True)
class DFTCheckSettings:
    functional: str = "b3lyp"
    basis: str = "6-31g*"
    conv_tol: float = 1e-10
    max_memory_mb: int = 4000
    expected: str = "ts"
    force_rms_max: float = DFT_FORCE_RMS_MAX
    imaginary_threshold: float = IMAGINARY_THRESHOLD

    def __post_init__(self) -> None:
        if self.expected not in ("ts", "minimum"):
            raise ValueError(f"dft 'expected' must be 'ts' or 'minimum', got {self.expected!r}")


@dataclass
class DFTCheckResult:
    outcome: Outcome
    message: str
    summary: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def run_dft_check(
    atoms: Atoms, settings: DFTCheckSettings, charge: int = 0, multiplicity: int | None = None, name: str = ""
) -> DFTCheckResult:
    """Verify one geometry at DFT: ``success``, ``wrong_imaginary_count``, ``not_stationary`` or
    ``not_converged`` (the SCF)."""
    reference = DFTReference(
        settings.functional, settings.basis, charge, multiplicity, settings.conv_tol, settings.max_memory_mb
    )
    try:
        out = reference.predict(atoms.numbers, atoms.positions, hessian="analytic", name=name)
    except ReferenceError as exc:
        return DFTCheckResult(Outcome.NOT_CONVERGED, str(exc), {"method": reference.name, "version": reference.version})
    vib = analyse(atoms.numbers, atoms.positions, out["hessian"], imaginary_threshold=settings.imaginary_threshold)
    force_rms = float(np.sqrt(np.mean(out["forces"] ** 2))) / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    want = 1 if settings.expected == "ts" else 0
    summary = {
        "method": reference.name,
        "version": reference.version,
        "energy_ev": out["energy"],
        "force_rms_ha_per_bohr": force_rms,
        "force_rms_max_ha_per_bohr": settings.force_rms_max,
        "n_imaginary": vib.n_imaginary,
        "imaginary_frequency_cm1": float(vib.frequencies[0]) if vib.n_imaginary else None,
        "lowest_frequencies_cm1": [round(float(f), 2) for f in vib.frequencies[:6]],
        "expected": settings.expected,
        "verified": vib.n_imaginary == want and force_rms <= settings.force_rms_max,
    }
    arrays = {"hessian": out["hessian"], "frequencies": vib.frequencies, "modes": vib.modes}
    if vib.n_imaginary != want:
        message = f"{vib.n_imaginary} imaginary modes at {reference.name}, expected {want}"
        return DFTCheckResult(Outcome.WRONG_IMAGINARY_COUNT, message, summary, arrays)
    if force_rms > settings.force_rms_max:
        message = (
            f"RMS force {force_rms:.2e} Ha/Bohr at {reference.name} is above {settings.force_rms_max:.0e}: "
            "not a stationary point"
        )
        return DFTCheckResult(Outcome.NOT_STATIONARY, message, summary, arrays)
    return DFTCheckResult(Outcome.SUCCESS, f"verified at {reference.name}", summary, arrays)
