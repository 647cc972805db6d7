"""The one table from outcomes to AiiDA exit codes, shared by CalcJobs, parsers and work chains.

Ranges as in aiida-quantumespresso: 300s an output is missing or unusable (or the input was refused),
400s a calculation did not converge, 500s a physics check failed. A work chain that ends because a
stage ended with an outcome returns that outcome's code, so ``reactions list`` and ``verdi process
list`` say the same thing at every level. Messages take one ``{message}`` field.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Outcome


@dataclass(frozen=True)
class ExitCodeSpec:
    status: int
    label: str
    message: str
    #: a node that ended with this code is never a cache source: its job died or its output is unusable, so a
    #: rerun of the same inputs (a restart handler, the batch's retry) must run, not copy the failure
    invalidates_cache: bool = False


#: outcome -> exit code (``success`` has none: status 0)
OUTCOME_EXIT_CODES: dict[Outcome, ExitCodeSpec] = {
    Outcome.INVALID_INPUT: ExitCodeSpec(303, "ERROR_INVALID_INPUT", "The input was rejected: {message}"),
    Outcome.ERROR: ExitCodeSpec(304, "ERROR_WORKER_CRASHED", "The worker failed: {message}", True),
    Outcome.PATH_FAILED: ExitCodeSpec(400, "ERROR_PATH_FAILED", "No reaction path / TS guess: {message}"),
    Outcome.NOT_CONVERGED: ExitCodeSpec(401, "ERROR_NOT_CONVERGED", "The optimisation did not converge: {message}"),
    Outcome.IRC_INCOMPLETE: ExitCodeSpec(402, "ERROR_IRC_INCOMPLETE", "The IRC could not be followed: {message}"),
    Outcome.FRAGMENTED: ExitCodeSpec(403, "ERROR_FRAGMENTED", "The optimisation ran away into fragments: {message}"),
    Outcome.WRONG_IMAGINARY_COUNT: ExitCodeSpec(
        500, "ERROR_WRONG_IMAGINARY_COUNT", "Wrong number of imaginary modes: {message}"
    ),
    Outcome.IRC_UNINTENDED: ExitCodeSpec(501, "ERROR_IRC_UNINTENDED", "The IRC connects other minima: {message}"),
    Outcome.IRC_SAME_ENDS: ExitCodeSpec(502, "ERROR_IRC_SAME_ENDS", "Both IRC ends are the same minimum: {message}"),
    Outcome.NOT_STATIONARY: ExitCodeSpec(
        503, "ERROR_NOT_STATIONARY", "Not a stationary point at this level: {message}"
    ),
}

#: exit codes that are not an outcome of the chemistry
OUTPUT_MISSING = ExitCodeSpec(301, "ERROR_OUTPUT_MISSING", "The worker wrote no results.json.", True)
OUTPUT_CORRUPT = ExitCodeSpec(302, "ERROR_OUTPUT_CORRUPT", "The worker's output could not be read: {message}", True)
BATCH_INCOMPLETE = ExitCodeSpec(
    305,
    "ERROR_BATCH_INCOMPLETE",
    "The worker finished {done} of {total} reactions (killed, or out of walltime?); the finished ones are attached.",
    True,
)
CONVERGED_TO_MINIMUM = ExitCodeSpec(
    504,
    "ERROR_CONVERGED_TO_MINIMUM",
    "The TS optimisation converged to a geometry without an imaginary mode (a minimum): {message}",
)
#: every code of the package, by status (statuses are unique: a test checks it)
ALL: tuple[ExitCodeSpec, ...] = tuple(
    sorted(
        [*OUTCOME_EXIT_CODES.values(), OUTPUT_MISSING, OUTPUT_CORRUPT, BATCH_INCOMPLETE, CONVERGED_TO_MINIMUM],
        key=lambda spec: spec.status,
    )
)
#: codes that mean the worker never produced a usable result: restarting cannot help
WORKER_FAILURES: tuple[ExitCodeSpec, ...] = (
    OUTPUT_MISSING,
    OUTPUT_CORRUPT,
    OUTCOME_EXIT_CODES[Outcome.INVALID_INPUT],
    OUTCOME_EXIT_CODES[Outcome.ERROR],
)


def outcome_of(status: int | None) -> Outcome | None:
    """The outcome an exit status stands for (``success`` for 0; ``None`` for other codes)."""
    if status == 0:
        return Outcome.SUCCESS
    return next((outcome for outcome, spec in OUTCOME_EXIT_CODES.items() if spec.status == status), None)


#: what each non-outcome code means beyond its message, for the README table
_NOTES = {
    303: "unknown element, checkpoint hash mismatch, bad settings, a charged molecule for the model",
    305: "`hip.reaction_batch` packs the unfinished reactions into a new job, once",
    403: "an atom with no neighbour within 4 A: a flat surface, not a TS",
    504: "`hip.base` only",
}


def markdown_table() -> str:
    """The README's exit-code table (a test keeps the README equal to it)."""
    outcome = {spec.status: o.value for o, spec in OUTCOME_EXIT_CODES.items()}
    lines = ["| status | label | outcome | meaning |", "|---|---|---|---|"]
    for code in ALL:
        meaning = code.message.replace(": {message}", "").replace("{done} of {total}", "N of M")
        if code.status in _NOTES:
            meaning += f" ({_NOTES[code.status]})"
        lines.append(f"| {code.status} | `{code.label}` | {outcome.get(code.status, '-')} | {meaning} |")
    return "\n".join(lines)


def declare(spec, codes=ALL) -> None:
    """Declare ``codes`` on a process spec (a CalcJob's or a work chain's)."""
    for code in codes:
        spec.exit_code(code.status, code.label, message=code.message, invalidates_cache=code.invalidates_cache)


if __name__ == "__main__":
    print(markdown_table())
