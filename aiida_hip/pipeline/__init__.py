"""L3: transition-state pipeline stages on pysisyphus with HIP (or xTB) energies, forces and Hessians.

No AiiDA here: each stage is a function ``(inputs, settings, workdir) -> result dataclass``.
"""

from ..common.level import Level, LevelError
from .calculators import Evaluator, ase_calculator, pysis_calculator
from .convergence import PRESETS, get_convergence
from .endpoints import compare_endpoints, same_molecule
from .freq import run_freq
from .inputs import ReactionInputError, check_reaction, read_reaction, read_structure
from .irc import IRCSettings, run_irc
from .opt import OptSettings, run_opt
from .path import PathSettings, run_gsm, run_path
from .routes import ROUTES, TSRoute, routes_for, single_route
from .ts_search import TSSearchResult, TSSearchSettings, ts_search
from .tsopt import TSOptSettings, run_tsopt

__all__ = [
    "PRESETS",
    "ROUTES",
    "Evaluator",
    "IRCSettings",
    "Level",
    "LevelError",
    "OptSettings",
    "PathSettings",
    "ReactionInputError",
    "TSOptSettings",
    "TSRoute",
    "TSSearchResult",
    "TSSearchSettings",
    "ase_calculator",
    "check_reaction",
    "compare_endpoints",
    "get_convergence",
    "pysis_calculator",
    "read_reaction",
    "read_structure",
    "routes_for",
    "run_freq",
    "run_gsm",
    "run_irc",
    "run_opt",
    "run_path",
    "run_tsopt",
    "same_molecule",
    "single_route",
    "ts_search",
]
