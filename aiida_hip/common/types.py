"""The enums of aiida-hip (in the manner of aiida-quantumespresso's ``common/types.py``).

Every ``click.Choice``, AiiDA validator, settings check and result field takes its values from
here; the string values are what files, nodes and the command line carry.
"""

from __future__ import annotations

from enum import StrEnum


class Calculator(StrEnum):
    """What computes energies and forces: the HIP model, or a reference level (GFN2-xTB through tblite, or
    DFT through PySCF with the settings of the DFT check, B3LYP/6-31G* by default)."""

    HIP = "hip"
    XTB = "xtb"
    DFT = "dft"

    @property
    def is_reference(self) -> bool:
        return self is not Calculator.HIP


#: reference levels a two-level search can refine at, and the default refinement of HIP searches
REFINE_LEVELS: tuple[str, ...] = tuple(c.value for c in Calculator if c.is_reference)
DEFAULT_REFINE = Calculator.XTB.value


class HessianMode(StrEnum):
    """What computes the Hessians the optimisers and frequency analyses use."""

    PREDICTED = "predicted"  #: the HIP head (one forward)
    AUTOGRAD = "autograd"  #: second derivative of the HIP energy (exact on the HIP surface)
    FINITE_DIFFERENCE = "finite-difference"  #: central differences of HIP forces
    REFERENCE = "reference"  #: the reference level's own: xTB central differences, DFT analytic
    NONE = "none"  #: never computed: guess Hessian + quasi-Newton updates, or Sella's own estimate

    @property
    def uses_model(self) -> bool:
        return self in (HessianMode.PREDICTED, HessianMode.AUTOGRAD, HessianMode.FINITE_DIFFERENCE)


class Route(StrEnum):
    """The TS route: ``pysisyphus`` (GSM or geodesic CI-NEB -> RS-P-RFO -> EulerPC IRC), ``sella``
    (geodesic guess -> Sella -> Sella IRC), or ``auto`` (the routes of :data:`AUTO_ORDER` in turn)."""

    PYSISYPHUS = "pysisyphus"
    SELLA = "sella"
    AUTO = "auto"

    @property
    def attempts(self) -> tuple[Route, ...]:
        """The single routes this one runs, in order."""
        return AUTO_ORDER if self is Route.AUTO else (self,)


#: ``auto``: Sella first, pysisyphus where Sella did not verify the TS (same success count on the
#: development set, 38 % less search time than the other order: benchmarks/results/ts_search_routes.md)
AUTO_ORDER: tuple[Route, ...] = (Route.SELLA, Route.PYSISYPHUS)


#: how a TS is verified: ``irc`` (the IRC both ways, its ends minimised) or ``qrc`` (quick reaction
#: coordinate: both sides of the TS mode minimised from the judging Hessian)
VERIFY_METHODS: tuple[str, ...] = ("irc", "qrc")
DEFAULT_VERIFY = "irc"


class Outcome(StrEnum):
    """How a stage (or a whole TS search) ended. ``success``: it did what it should; every other value
    names the stage that stopped and why, and maps to one exit code (:mod:`aiida_hip.common.exit_codes`)."""

    SUCCESS = "success"
    INVALID_INPUT = "invalid_input"  #: the input cannot be run (nothing was computed)
    ERROR = "error"  #: the worker crashed
    PATH_FAILED = "path_failed"  #: no reaction path / TS guess
    NOT_CONVERGED = "not_converged"  #: an optimisation ran out of steps
    FRAGMENTED = "fragmented"  #: a TS optimisation ran away into fragments
    IRC_INCOMPLETE = "irc_incomplete"  #: the IRC could not be followed to both ends
    WRONG_IMAGINARY_COUNT = "wrong_imaginary_count"  #: not the expected number of imaginary modes
    IRC_UNINTENDED = "irc_unintended"  #: the IRC connects other minima
    IRC_SAME_ENDS = "irc_same_ends"  #: both IRC ends relax to the same minimum
    NOT_STATIONARY = "not_stationary"  #: the DFT check finds a large residual force

    @property
    def found_path(self) -> bool:
        """The path stage gave a TS guess."""
        return self not in (Outcome.PATH_FAILED, Outcome.INVALID_INPUT, Outcome.ERROR)

    @property
    def converged_ts(self) -> bool:
        """The TS optimisation converged (whatever the frequencies said)."""
        return self.ts_found or self is Outcome.WRONG_IMAGINARY_COUNT

    @property
    def ts_found(self) -> bool:
        """A first-order saddle was found (whatever its IRC showed)."""
        return self in (Outcome.SUCCESS, Outcome.IRC_INCOMPLETE, Outcome.IRC_UNINTENDED, Outcome.IRC_SAME_ENDS)


def outcome_or_none(status: str | None) -> Outcome | None:
    """The outcome a status string names; ``None`` for the states of unfinished or unknown searches
    (``running``, ``no_result``, ...)."""
    try:
        return Outcome(status)
    except ValueError:
        return None


def choices(enum: type[StrEnum]) -> list[str]:
    """The values of ``enum``, for ``click.Choice`` and error messages."""
    return [member.value for member in enum]
