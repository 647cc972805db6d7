"""``aiida-hip``: the command line (click, in the ``verdi`` style).

The commands load lazily (click's "Lazily Loading Subcommands"): a command's module, with what it imports
at its top (AiiDA, the pipeline, torch), is imported only when that command runs or shows its own help.
``aiida-hip --help`` lists the commands from :data:`COMMANDS` without importing any of them.
"""

from __future__ import annotations

import importlib

import click
from click.formatting import HelpFormatter
from click.utils import make_default_short_help

#: name -> (module in aiida_hip.cli, attribute, the summary line of its help: what ``aiida-hip --help``
#: lists; tests/cli check that it is the first paragraph of the command's own help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("data", "data", "Generate and inspect the xTB reaction dataset."),
    "demo": (
        "demo",
        "demo",
        "Relax a molecule with GFN2-xTB, then compare HIP, autograd and xTB Hessians and frequencies.",
    ),
    "evaluate": (
        "training",
        "evaluate",
        "Model quality against a baseline checkpoint, and the seed's Table 1, on the same held-out geometries.",
    ),
    "freq": (
        "pipeline",
        "freq_cmd",
        "Eckart-projected harmonic frequencies of MOLECULE (no optimisation; --convergence is unused).",
    ),
    "optimize": (
        "pipeline",
        "optimize_cmd",
        "Minimise MOLECULE (RFO, model Hessians) and characterise it (frequencies, ZPE).",
    ),
    "reactions": (
        "reactions",
        "reactions_group",
        "The TS database: list, show and export the reactions searched (hip.ts_search or packed hip.ts_batch).",
    ),
    "report": (
        "report",
        "report_cmd",
        "Write an HTML report of TARGET: a group label or the pk of a hip.reaction_batch work chain.",
    ),
    "setup": (
        "setup",
        "setup_cmd",
        "Create the AiiDA profile (if missing), the localhost computer and the worker code.",
    ),
    "submit": (
        "submit",
        "submit_cmd",
        "Find the TS of every reaction in SOURCE: a folder of reaction folders (reactant.* + product.*) or a "
        "multi-frame file (reactant, product, reactant, product, ...); or of the reactions in a group.",
    ),
    "train": (
        "training",
        "train",
        "Train HIP: energy + forces, then the Hessian head on the frozen backbone (resumable); or, with --init, "
        "fine-tune a checkpoint on shard folders and report the held-out Hessian MAE before and after.",
    ),
    "ts-search": (
        "pipeline",
        "ts_search_cmd",
        "Find and verify the transition state between REACTANT and PRODUCT (any ASE-readable files, same atom order).",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; its own help lists them from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute, _ = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{__name__}.{module}"), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        """What :meth:`click.Group.format_commands` writes, from the summaries instead of the commands."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, make_default_short_help(COMMANDS[name][2], limit))
            if name in COMMANDS
            else (name, self.commands[name].get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aiida-hip")
def main() -> None:
    """aiida-hip: transition-state searches with HIP Hessians and AiiDA provenance."""
