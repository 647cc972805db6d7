"""TS routes as objects: each is a path step, a TS-optimisation step and an IRC step.

``ts_search``, the worker's per-stage functions and the benchmarks all go through these, so a route
is written once; ``auto`` is only a list of routes (:data:`aiida_hip.common.types.AUTO_ORDER`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..common.molecule import ReactionInputError
from ..common.types import Outcome, Route
from .calculators import Evaluator
from .endpoints import EndpointResult, compare_endpoints
from .irc import IRCResult, IRCSettings, run_irc
from .path import PathResult, PathSettings, failed_path, run_path
from .sella_route import SellaSettings, geodesic_guess, run_sella_irc, run_sella_tsopt
from .tsopt import TSOptResult, TSOptSettings, run_tsopt


@dataclass(frozen=True)
class TSRoute:
    """One way from a reactant and a product to a TS and its IRC."""

    name: Route
    #: suffix of this route's stage folders and result keys ("" for pysisyphus, the historical default)
    suffix: str
    optimizer: str

    def path(
        self, reactant: Atoms, product: Atoms, evaluator: Evaluator, settings: PathSettings, workdir: Path
    ) -> PathResult:
        raise NotImplementedError

    def tsopt(
        self,
        guess: Atoms,
        tangent: np.ndarray | None,
        curvature: float | None,
        evaluator: Evaluator,
        settings: TSOptSettings,
        sella: SellaSettings,
        workdir: Path,
    ) -> TSOptResult:
        raise NotImplementedError

    def irc(
        self, ts: Atoms, hessian: np.ndarray, evaluator: Evaluator, settings: IRCSettings, workdir: Path
    ) -> IRCResult:
        raise NotImplementedError

    def path_method(self, settings: PathSettings) -> str:
        return settings.method


@dataclass(frozen=True)
class PysisyphusRoute(TSRoute):
    """GSM or geodesic CI-NEB -> RS-P-RFO along the path tangent -> EulerPC IRC."""

    def path(self, reactant, product, evaluator, settings, workdir):
        if settings.guess_rank:
            return failed_path("the pysisyphus path gives its highest image only (guess_rank 0)", time.perf_counter())
        return run_path(reactant, product, evaluator, settings, workdir)

    def tsopt(self, guess, tangent, curvature, evaluator, settings, sella, workdir):
        if tangent is None:
            raise ReactionInputError("RS-P-RFO needs the path tangent at the guess (array 'tangent')")
        return run_tsopt(guess, tangent, evaluator, settings, workdir, curvature=curvature)

    def irc(self, ts, hessian, evaluator, settings, workdir):
        return run_irc(ts, hessian, evaluator, settings, workdir)


@dataclass(frozen=True)
class SellaRoute(TSRoute):
    """Geodesic interpolation -> Sella in internal coordinates -> Sella IRC."""

    def path(self, reactant, product, evaluator, settings, workdir):
        return geodesic_guess(reactant, product, evaluator, settings, workdir)

    def tsopt(self, guess, tangent, curvature, evaluator, settings, sella, workdir):
        return run_sella_tsopt(guess, evaluator, settings, workdir, sella)

    def irc(self, ts, hessian, evaluator, settings, workdir):
        return run_sella_irc(ts, hessian, evaluator, settings, workdir)

    def path_method(self, settings: PathSettings) -> str:
        return "geodesic"


ROUTES: dict[Route, TSRoute] = {
    Route.PYSISYPHUS: PysisyphusRoute(Route.PYSISYPHUS, "", "RS-P-RFO"),
    Route.SELLA: SellaRoute(Route.SELLA, "_sella", "Sella"),
}


def routes_for(route: str | Route) -> list[TSRoute]:
    """The single routes ``route`` runs, in order (``auto``: several)."""
    try:
        return [ROUTES[r] for r in Route(route).attempts]
    except ValueError:
        raise ReactionInputError(f"route must be one of {[r.value for r in Route]}, got {route!r}") from None


def single_route(route: str | Route) -> TSRoute:
    """A route that names one way (a single stage cannot run ``auto``)."""
    routes = routes_for(route)
    if len(routes) != 1:
        raise ReactionInputError(f"a single stage needs route pysisyphus or sella, got {route!r}")
    return routes[0]


def judge_irc(
    irc: IRCResult, reactant: Atoms | None, product: Atoms | None
) -> tuple[Outcome, str, EndpointResult | None]:
    """The IRC's outcome: incomplete, or (when the intended ends are known) intended, unintended or same ends."""
    if irc.outcome is not Outcome.SUCCESS:
        return irc.outcome, irc.message, None
    if reactant is None or product is None:
        return Outcome.SUCCESS, irc.message, None
    check = compare_endpoints(reactant, product, irc.forward_end, irc.backward_end)
    return check.outcome, check.message, check
