"""The attempts of one TS search: which route, TS guess and Hessian each one tries, in order.

A TS whose IRC connects other minima, whose frequencies are wrong or that does not converge ends an
*attempt*, not the search: the next attempt starts from another guess, without the model's Hessians,
on the other route or with the surface's exact Hessians, until one verifies or the plan is spent. The
pipeline (:func:`aiida_hip.pipeline.ts_search`) and the AiiDA work chain (``hip.ts_search``) walk the
same plan, so both record the same attempts with the same reasons.

An attempt is written ``route:guess:hessian``:

- ``guess``: ``highest`` (the highest image of the path between the optimised ends), ``second`` (the
  second-highest local maximum of the same path), ``given`` (the path between the ends as given, before
  any minimisation);
- ``hessian``: ``level`` (the level's Hessians: HIP-preconditioned in the default two-level search),
  ``none`` (Hessian-free: Sella's own iterative estimate, Bofill updates in RS-P-RFO), ``exact`` (the
  surface's true second derivative every step: the reference Hessian at xTB/DFT, autograd for HIP).
"""

from __future__ import annotations

from dataclasses import dataclass

from .level import Level
from .types import HessianMode, Outcome, Route

GUESSES: tuple[str, ...] = ("highest", "second", "given")
ATTEMPT_HESSIANS: tuple[str, ...] = ("level", "none", "exact")

#: the plan of each route, cheapest first. The Hessian-free attempt from the same guess follows the
#: level's own one, so a search whose model Hessians mislead it still gets the Hessian-free search; the
#: exact-Hessian attempt is last because it costs 6N gradients a step at the reference level.
PLANS: dict[Route, tuple[str, ...]] = {
    Route.SELLA: (
        "sella:highest:level",
        "sella:highest:none",
        "sella:second:none",
        "sella:given:none",
        "sella:highest:exact",
    ),
    Route.PYSISYPHUS: (
        "pysisyphus:highest:level",
        "pysisyphus:highest:none",
        "pysisyphus:given:none",
        "pysisyphus:highest:exact",
    ),
    Route.AUTO: (
        "sella:highest:level",
        "sella:highest:none",
        "sella:second:none",
        "sella:given:none",
        "sella:highest:exact",
        "pysisyphus:highest:level",
    ),
}

#: outcomes after which another attempt may succeed; anything else (bad input) ends the search
RETRY_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.ERROR,
        Outcome.PATH_FAILED,
        Outcome.NOT_CONVERGED,
        Outcome.FRAGMENTED,
        Outcome.IRC_INCOMPLETE,
        Outcome.WRONG_IMAGINARY_COUNT,
        Outcome.IRC_UNINTENDED,
        Outcome.IRC_SAME_ENDS,
        Outcome.NOT_STATIONARY,
    }
)


class AttemptError(ValueError):
    """An attempt that cannot be parsed."""


@dataclass(frozen=True)
class Attempt:
    route: str
    guess: str = "highest"
    hessian: str = "level"

    def __post_init__(self) -> None:
        if self.route not in (Route.SELLA, Route.PYSISYPHUS):
            raise AttemptError(f"an attempt runs route sella or pysisyphus, got {self.route!r}")
        if self.guess not in GUESSES:
            raise AttemptError(f"attempt guess must be one of {list(GUESSES)}, got {self.guess!r}")
        if self.hessian not in ATTEMPT_HESSIANS:
            raise AttemptError(f"attempt hessian must be one of {list(ATTEMPT_HESSIANS)}, got {self.hessian!r}")

    @property
    def key(self) -> str:
        return f"{self.route}:{self.guess}:{self.hessian}"

    @property
    def guess_rank(self) -> int:
        """Which local maximum of the path is the guess (0: the highest)."""
        return 1 if self.guess == "second" else 0

    @property
    def path_key(self) -> str:
        """Attempts with the same key share one path: same route, same ends, same rank."""
        return f"{self.route}:{'given' if self.guess == 'given' else 'minimised'}:{self.guess_rank}"

    @classmethod
    def parse(cls, text: str) -> Attempt:
        parts = str(text).split(":")
        if len(parts) != 3:
            raise AttemptError(f"an attempt is route:guess:hessian (e.g. sella:highest:none), got {text!r}")
        return cls(*parts)


def attempt_record(attempt: Attempt, index: int, skipped: str | None = None) -> dict:
    """The record of attempt number ``index`` (1-based) before it runs, or skipped with the reason ``skipped``."""
    record = {
        "index": index,
        "attempt": attempt.key,
        "route": attempt.route,
        "guess": attempt.guess,
        "hessian": attempt.hessian,
        "status": None,
    }
    return record | {"skipped": True, "reason": skipped} if skipped else record


def attempt_plan(route: str, attempts: list[str] | tuple[str, ...] | None = None) -> list[Attempt]:
    """The attempts of a search on ``route``: ``attempts`` if given (each checked), else the route's plan."""
    try:
        chosen = Route(route)
    except ValueError:
        raise AttemptError(f"route must be one of {[r.value for r in Route]}, got {route!r}") from None
    plan = [Attempt.parse(a) for a in (attempts if attempts else PLANS[chosen])]
    if not plan:
        raise AttemptError("the attempt plan is empty")
    return plan


def skip_reason(attempt: Attempt, done: list[dict], ends_moved: bool) -> str | None:
    """Why ``attempt`` would repeat one already made, or ``None``.

    ``done`` holds the attempt records so far: ``route``, ``guess``, ``hessian``, ``index`` and, once run,
    ``hessian_free`` (no Hessian of the level reached the optimiser: the level has none, or the guard
    rejected the model's before the first step, or the route starts Hessian-free for approximate ones) and
    ``hessian_exact`` (the optimiser had the surface's exact Hessians). ``ends_moved``: the minimised ends
    differ from the given ones, so a path between the given ones is a new guess.
    """
    if attempt.guess == "given" and not ends_moved:
        return "the given ends are the minimised ones: same path as the highest guess"
    for d in done:
        if d.get("skipped") or d.get("route") != attempt.route or d.get("guess") != attempt.guess:
            continue
        if d.get("hessian") == attempt.hessian:
            return f"already tried as attempt {d.get('index')}"
        if d.get("status") == Outcome.PATH_FAILED:
            return f"the same path gave no TS guess in attempt {d.get('index')}"
        if attempt.hessian == "none" and d.get("hessian_free"):
            return f"attempt {d.get('index')} was already Hessian-free ({d['hessian_free']})"
        if attempt.hessian == "exact" and d.get("hessian_exact"):
            return f"attempt {d.get('index')} already had the exact Hessians"
    return None


#: a search starts no new attempt once its attempts have spent this many times the first one's reference cost:
#: a reaction no guess can verify (a multi-step one, say) costs a few searches, not the whole plan
DEFAULT_BUDGET_FACTOR = 3.0


def over_budget(done: list[dict], factor: float | None) -> str | None:
    """Why no further attempt may start (``done``: records with ``reference_gradient_equivalents``), or ``None``.
    A search without reference cost (pure HIP) is bounded by its plan alone."""
    ran = [d for d in done if not d.get("skipped") and d.get("reference_gradient_equivalents") is not None]
    if factor is None or not ran or not ran[0]["reference_gradient_equivalents"]:
        return None
    first = ran[0]["reference_gradient_equivalents"]
    spent = sum(d["reference_gradient_equivalents"] for d in ran)
    if spent >= factor * first:
        return (
            f"budget: the attempts spent {spent} reference gradient equivalents, {spent / first:.1f}x the first one's"
        )
    return None


def exact_step_cap(done: list[dict], factor: float | None, n_atoms: int) -> int | None:
    """The most TS steps an exact-Hessian attempt may take inside the budget (a reference Hessian is 6N gradient
    equivalents a step), at least 3; ``None`` when nothing bounds it. Without the cap one exact attempt that did
    not converge cost 30x the first attempt on a held-out reaction."""
    ran = [d for d in done if not d.get("skipped") and d.get("reference_gradient_equivalents") is not None]
    if factor is None or not ran or not ran[0]["reference_gradient_equivalents"]:
        return None
    remaining = factor * ran[0]["reference_gradient_equivalents"] - sum(
        d["reference_gradient_equivalents"] for d in ran
    )
    return max(3, int(remaining // (6 * n_atoms + 2)))


def retry_after(outcome: Outcome) -> bool:
    return outcome in RETRY_OUTCOMES


def hessian_use(level: Level, feed: dict | None) -> dict:
    """What Hessians reached one TS optimisation at ``level``, from its Hessian feed's summary ``feed``:
    ``hessian_free`` names why none of the level's did (else ``False``), ``hessian_exact`` whether they were
    the surface's exact ones, ``model_hessians_used`` whether approximate (HIP) ones steered a step."""
    feed = feed or {}
    out = {"hessian_free": False, "hessian_exact": False, "model_hessians_used": False}
    if level.hessian == HessianMode.NONE:
        return out | {"hessian_free": "no Hessians at this level"}
    if level.hessian_is_exact:
        return out | {"hessian_exact": True}
    tripped = feed.get("guard_tripped_at")
    if not feed.get("n_hessians"):
        return out | {"hessian_free": "the route starts Hessian-free for approximate Hessians"}
    if tripped == 0:
        return out | {"hessian_free": "the guard's probe rejected the first model Hessian", "guard_tripped_at": 0}
    return out | {"model_hessians_used": True, "guard_tripped_at": tripped}
