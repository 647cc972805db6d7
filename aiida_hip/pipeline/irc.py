"""IRC in both directions (EulerPC, Cartesian) from the TS Hessian, then a short optimisation of each end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from ..chem.units import HARTREE_TO_EV
from ..common.types import Outcome
from .calculators import Evaluator, pysis_calculator
from .common import quiet_pysisyphus, stage_folder, stopped, to_atoms, to_geometry, write_hessian
from .opt import OptResult, OptSettings, endpoint_settings, run_opt


@dataclass(frozen=True)
class IRCSettings:
    """``hessian_recalc`` = None: Bofill updates along the path from the TS Hessian only."""

    step_length: float = 0.1
    max_cycles: int = 75
    rms_grad_thresh: float = 1e-3
    hessian_recalc: int | None = None
    endpoint_opt: OptSettings = field(default_factory=lambda: endpoint_settings(max_cycles=60))


@dataclass
class IRCResult:
    completed: bool
    message: str
    forward_end: Atoms | None = None
    backward_end: Atoms | None = None
    forward_opt: OptResult | None = None
    backward_opt: OptResult | None = None
    energies_ev: list[float] = field(default_factory=list)
    trajectory: list[Atoms] = field(default_factory=list)
    n_cycles: int = 0
    wall_time_s: float = 0.0
    #: ``irc`` (the path of steepest descent) or ``qrc`` (both sides of the TS mode minimised: no profile)
    method: str = "irc"

    def profile(self) -> dict | None:
        """Energy (eV) against path length (Angstrom, Cartesian, 0 at the highest point) along the IRC,
        forward end first; None when the energies of the inner points were not kept."""
        if self.method != "irc" or len(self.trajectory) < 2 or len(self.energies_ev) != len(self.trajectory):
            return None
        positions = np.array([a.positions for a in self.trajectory])
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=(1, 2)))])
        s -= s[int(np.argmax(self.energies_ev))]
        return {"s_angstrom": np.round(s, 5).tolist(), "energy_ev": np.round(self.energies_ev, 6).tolist()}

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.completed else Outcome.IRC_INCOMPLETE

    def summary(self) -> dict:
        return {
            "method": self.method,
            "profile": self.profile(),
            "completed": self.completed,
            "message": self.message,
            "n_cycles": self.n_cycles,
            "n_points": len(self.trajectory),
            "forward_end_opt": self.forward_opt.summary() if self.forward_opt else None,
            "backward_end_opt": self.backward_opt.summary() if self.backward_opt else None,
            "wall_time_s": self.wall_time_s,
        }


def run_irc(
    ts: Atoms, ts_hessian: np.ndarray, evaluator: Evaluator, settings: IRCSettings, workdir: str | Path
) -> IRCResult:
    """Follow the IRC down both sides of ``ts``, starting from ``ts_hessian`` (eV/A^2), not a new one."""
    quiet_pysisyphus()
    from pysisyphus.irc.EulerPC import EulerPC

    t0 = time.perf_counter()
    with stage_folder(workdir) as folder:
        geom = to_geometry(ts, pysis_calculator(evaluator))
        hessian_file = write_hessian(folder / "ts_hessian.h5", ts_hessian)
        kwargs = {"hessian_recalc": settings.hessian_recalc} if evaluator.level.hessian != "none" else {}
        irc = EulerPC(
            geom,
            step_length=settings.step_length,
            max_cycles=settings.max_cycles,
            rms_grad_thresh=settings.rms_grad_thresh,
            hessian_init=str(hessian_file),
            out_dir=str(folder),
            **kwargs,
        )
        try:
            irc.run()
        except Exception as exc:
            return IRCResult(False, stopped("IRC stopped", exc), wall_time_s=time.perf_counter() - t0)
        coords = np.asarray(irc.all_coords)
        trajectory = [to_atoms(geom.atoms, c) for c in coords]
        energies = (np.asarray(irc.all_energies, dtype=np.float64) * HARTREE_TO_EV).tolist()
        write(folder / "irc.xyz", trajectory)
        # all_coords: forward branch reversed, the TS, then the backward branch.
        forward_end, backward_end = trajectory[0], trajectory[-1]
        n_cycles = int(getattr(irc, "forward_cycle", 0) or 0) + int(getattr(irc, "backward_cycle", 0) or 0)
    result = IRCResult(
        True,
        "both directions followed",
        forward_end,
        backward_end,
        energies_ev=energies,
        trajectory=trajectory,
        n_cycles=n_cycles,
    )
    result.forward_opt = run_opt(forward_end, evaluator, settings.endpoint_opt, Path(workdir) / "forward_end_opt")
    result.backward_opt = run_opt(backward_end, evaluator, settings.endpoint_opt, Path(workdir) / "backward_end_opt")
    result.forward_end, result.backward_end = result.forward_opt.atoms, result.backward_opt.atoms
    result.wall_time_s = time.perf_counter() - t0
    return result
