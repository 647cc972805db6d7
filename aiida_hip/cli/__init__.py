"""``aiida-hip``: the command line (click, in the ``verdi`` style)."""

from __future__ import annotations

import click

from .data import data, evaluate, train
from .demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aiida-hip")
def main() -> None:
    """aiida-hip: transition-state searches with HIP Hessians and AiiDA provenance."""


main.add_command(demo)
main.add_command(data)
main.add_command(train)
main.add_command(evaluate)
