"""Quick reaction coordinate (QRC) check: where does the TS lead, at a fraction of an IRC's cost.

Displace the TS along its imaginary mode (from the judging Hessian, already paid for by the frequency
check) both ways and minimise each side; the two minima are then compared with the intended ends by
molecular graph, exactly as the IRC's ends are. The sides are minimised by Sella in internal coordinates
without Hessians. What it does not give is the reaction profile: the report's IRC plot needs
``verify='irc'``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from ..chem.vibrations import analyse
from .calculators import Evaluator
from .irc import IRCResult
from .sella_route import run_sella_min


@dataclass(frozen=True)
class QRCSettings:
    #: A: the largest atomic displacement of the first step along the TS mode (doubled, up to twice, while
    #: the energy does not drop by ``min_drop`` eV)
    displacement: float = 0.15
    min_drop: float = 1e-3
    #: Gaussian preset of the side minimisations and their most steps
    convergence: str = "normal"
    max_steps: int = 150


def run_qrc(
    ts: Atoms, ts_hessian: np.ndarray, evaluator: Evaluator, settings: QRCSettings, workdir: str | Path
) -> IRCResult:
    """Both sides of ``ts`` along the imaginary mode of ``ts_hessian`` (eV/A^2), each minimised; the result
    has the IRC's fields (ends, their minimisations, a five-point trajectory) and ``method='qrc'``."""
    t0 = time.perf_counter()
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    mode = analyse(ts.numbers, ts.positions, ts_hessian).modes[0]  # the softest: the imaginary one at a TS
    mode = mode / np.abs(mode).max()
    e_ts = evaluator.gradient(ts.numbers, ts.positions)["energy"]
    sides, starts, start_energies = {}, {}, {}
    for name, sign in (("forward", 1.0), ("backward", -1.0)):
        step = settings.displacement
        for _ in range(3):
            displaced = Atoms(numbers=ts.numbers, positions=ts.positions + sign * step * mode)
            energy = evaluator.gradient(displaced.numbers, displaced.positions)["energy"]
            if e_ts - energy >= settings.min_drop:
                break
            step *= 2.0
        starts[name], start_energies[name] = displaced, energy
        sides[name] = run_sella_min(
            displaced, evaluator, settings.convergence, settings.max_steps, folder / f"{name}_end_opt"
        )
    forward, backward = sides["forward"], sides["backward"]
    trajectory = [forward.atoms, starts["forward"], ts.copy(), starts["backward"], backward.atoms]
    write(folder / "qrc.xyz", trajectory)
    message = "both sides of the TS mode minimised (QRC)"
    if not (forward.converged and backward.converged):  # as the IRC's end minimisations: the graph decides
        message += f"; forward {forward.message}, backward {backward.message}"
    energies = [forward.energy_ev, start_energies["forward"], e_ts, start_energies["backward"], backward.energy_ev]
    return IRCResult(
        True,
        message,
        forward.atoms,
        backward.atoms,
        forward_opt=forward,
        backward_opt=backward,
        energies_ev=energies,
        trajectory=trajectory,
        n_cycles=forward.n_cycles + backward.n_cycles,
        wall_time_s=time.perf_counter() - t0,
        method="qrc",
    )
