"""``aiida-hip``'s commands load lazily: ``--help`` imports none of them and lists what they would."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from aiida_hip.cli import COMMANDS, main


def test_help_imports_no_command_module():
    code = (
        "import sys; from aiida_hip.cli import main; main(['--help'], standalone_mode=False);"
        "heavy = ('torch', 'aiida', 'ase', 'numpy', 'pysisyphus', 'sella', 'aiida_hip.pipeline', 'aiida_hip.hip');"
        "print(sorted(m for m in sys.modules if m in heavy or m.startswith('aiida_hip.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("width", [60, 80, 200])
def test_listing_is_what_the_commands_say(width):
    """The summaries in COMMANDS are the commands' own help, as click would list the loaded commands."""
    ctx = click.Context(main, info_name="aiida-hip")
    loaded = click.Group("aiida-hip", commands={name: main.get_command(ctx, name) for name in COMMANDS})
    lazy_text, eager_text = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    main.format_commands(ctx, lazy_text)
    loaded.format_commands(click.Context(loaded), eager_text)
    assert lazy_text.getvalue() == eager_text.getvalue()


def test_every_command_loads_under_its_name():
    ctx = click.Context(main, info_name="aiida-hip")
    for name in COMMANDS:
        assert main.get_command(ctx, name).name == name
    assert main.get_command(ctx, "no-such-command") is None
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command 'no-such-command'" in result.output
