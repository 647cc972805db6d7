"""The one schema of a reaction's TS-search result, whoever produced it.

The pipeline's ``result.json`` (and so a packed job's ``results.<name>``), the ``hip.ts_search`` work
chain's ``output_parameters`` and the rows of ``queries``/``reactions list``/batch summaries all carry
these fields with these meanings (energies eV, frequencies cm^-1; ``status`` an ``Outcome`` value).
"""

from __future__ import annotations

from typing import Any

#: fields every TS-search result carries
RESULT_FIELDS: tuple[str, ...] = (
    "status",  #: an Outcome value
    "message",
    "route",  #: the route of the last attempt
    "ts_found",  #: a first-order saddle was found
    "n_imaginary",
    "imaginary_frequency_cm1",
    "irc_intended",
    "barrier_forward_ev",
    "barrier_reverse_ev",
    "n_tsopt_steps",
    "level",
    "model",  #: the checkpoint's provenance (file, sha256, shipped) where the model was used
)
#: thermochemistry of a verified TS (None where there is none); the pipeline nests them under
#: ``thermochemistry``, the work chain lifts them to the top
THERMO_FIELDS: tuple[str, ...] = (
    "gibbs_barrier_forward_ev",
    "gibbs_barrier_reverse_ev",
    "rate_forward_per_s",
    "rate_reverse_per_s",
)
#: the columns of one reaction in a summary table (batch summaries, ``reactions list``)
ROW_FIELDS: tuple[str, ...] = (
    "status",
    "route",
    "barrier_forward_ev",
    "barrier_reverse_ev",
    "imaginary_frequency_cm1",
    "irc_intended",
    "message",
    *THERMO_FIELDS,
)
NO_RESULT = "no_result"


def result_row(data: dict[str, Any] | None) -> dict[str, Any]:
    """The summary-table fields of one result (``status`` ``no_result`` when there is none)."""
    data = data if data is not None else {"status": NO_RESULT, "message": "no result was produced"}
    thermo = data.get("thermochemistry") or {}
    row = {key: data.get(key, thermo.get(key)) for key in ROW_FIELDS}
    row["irc_intended"] = bool(row["irc_intended"])
    row["message"] = row["message"] or ""
    return row
