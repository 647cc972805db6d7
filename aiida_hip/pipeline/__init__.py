"""L3: transition-state pipeline stages on pysisyphus with HIP (or xTB) energies, forces and Hessians.

No AiiDA here: each stage is a function ``(inputs, settings, workdir) -> result dataclass``.
"""

from .calculators import CALCULATORS, HESSIANS, Evaluator, Level, LevelError, ase_calculator, pysis_calculator
from .convergence import PRESETS, get_convergence
from .endpoints import compare_endpoints, same_molecule
from .freq import run_freq
from .gsm import GSMSettings, run_gsm, run_path
from .inputs import ReactionInputError, check_reaction, read_reaction, read_structure
from .irc import IRCSettings, run_irc
from .opt import OptSettings, run_opt
from .ts_search import STATUSES, TSSearchResult, TSSearchSettings, ts_search
from .tsopt import TSOptSettings, run_tsopt

__all__ = [
    "CALCULATORS",
    "HESSIANS",
    "PRESETS",
    "STATUSES",
    "Evaluator",
    "GSMSettings",
    "IRCSettings",
    "Level",
    "LevelError",
    "OptSettings",
    "ReactionInputError",
    "TSOptSettings",
    "TSSearchResult",
    "TSSearchSettings",
    "ase_calculator",
    "check_reaction",
    "compare_endpoints",
    "get_convergence",
    "pysis_calculator",
    "read_reaction",
    "read_structure",
    "run_freq",
    "run_gsm",
    "run_irc",
    "run_opt",
    "run_path",
    "run_tsopt",
    "same_molecule",
    "ts_search",
]
