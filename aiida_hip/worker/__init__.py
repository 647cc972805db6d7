"""L4: ``aiida-hip-worker INPUT.json`` runs one pipeline stage for one or many reactions.

It is the executable a CalcJob's ``Code`` points to, on the workstation or a compute node with the
package installed. The model is loaded once per process, whatever the number of reactions. Output:
``results.json`` (per reaction: outcome, message, summary, structures, trajectories), ``arrays.npz``
(Hessians in eV/A^2, frequencies in cm^-1, modes, tangents) and the stages' folders under ``work/``.

This package exports the file formats only (``io``), which CalcJobs and parsers import in the daemon;
the executable (``aiida_hip.worker.main``) loads the pipeline.
"""

from .io import (
    ARRAYS_FILE,
    EXIT_INTERNAL_ERROR,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    OUTCOMES,
    RESULTS_FILE,
    SCHEMA,
    STAGES,
    WorkerInputError,
    read_input,
    read_results,
    write_input,
)

__all__ = [
    "ARRAYS_FILE",
    "EXIT_INTERNAL_ERROR",
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "OUTCOMES",
    "RESULTS_FILE",
    "SCHEMA",
    "STAGES",
    "WorkerInputError",
    "read_input",
    "read_results",
    "write_input",
]
