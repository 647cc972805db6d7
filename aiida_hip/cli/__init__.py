"""``aiida-hip``: the command line (click, in the ``verdi`` style)."""

from __future__ import annotations

import click

from .data import data, evaluate, train
from .demo import demo
from .pipeline import freq_cmd, optimize_cmd, ts_search_cmd
from .reactions import reactions_group
from .report import report_cmd
from .setup import setup_cmd
from .submit import submit_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aiida-hip")
def main() -> None:
    """aiida-hip: transition-state searches with HIP Hessians and AiiDA provenance."""


main.add_command(demo)
main.add_command(data)
main.add_command(train)
main.add_command(evaluate)
main.add_command(ts_search_cmd)
main.add_command(optimize_cmd)
main.add_command(freq_cmd)
main.add_command(setup_cmd)
main.add_command(submit_cmd)
main.add_command(reactions_group)
main.add_command(report_cmd)
