"""Options that several commands share, in a light module (click and the L0 vocabulary only)."""

from __future__ import annotations

import click

from ..common.types import DEFAULT_REFINE, REFINE_LEVELS, Calculator, HessianMode

#: the worker code ``aiida-hip setup`` creates (as ``hip-worker@<computer>``) and ``submit`` uses by default
CODE_LABEL = "hip-worker"

PROFILE_OPTION = click.option(
    "-p", "--profile", default=None, help="AiiDA profile (default: the default profile of AIIDA_PATH)."
)

#: the two-level search's switch, shared by ``ts-search`` and ``submit``
REFINE_OPTION = click.option(
    "--refine",
    type=click.Choice(["none", *REFINE_LEVELS]),
    default=DEFAULT_REFINE,
    show_default=True,
    help="Two-level search (HIP calculator only): HIP finds the path and a TS, which is refined on the xTB or "
    "DFT (PySCF, B3LYP/6-31G*) surface with conditioned HIP Hessians, judged by one reference Hessian, with "
    "IRC and ends at that level. none: the search stays on the HIP surface.",
)


def default_hessian(calculator: str, hessian: str | None) -> str:
    """The Hessian asked for, else the calculator's own: predicted with HIP, reference with xTB."""
    if hessian:
        return hessian
    return HessianMode.PREDICTED.value if calculator == Calculator.HIP else HessianMode.REFERENCE.value
