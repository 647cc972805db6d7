"""The L0 layer: one vocabulary, one outcome table, and the import rules that keep the daemon light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiida_hip.common import exit_codes
from aiida_hip.common.level import Level, LevelError
from aiida_hip.common.molecule import ReactionInputError, check_reaction
from aiida_hip.common.types import AUTO_ORDER, Calculator, HessianMode, Outcome, Route, choices

PACKAGE = Path(__file__).resolve().parents[2] / "aiida_hip"
README = PACKAGE.parent / "README.md"


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text())
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(parts[: len(parts) - node.level]) if node.level else []
            names.add(".".join([*base, *(node.module or "").split(".")]).strip("."))
    return names


@pytest.mark.parametrize("layer", ["calcjobs", "parsers", "workflows", "common"])
def test_aiida_layers_never_import_the_pipeline(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        bad = {name for name in _imports(path) if name.startswith("aiida_hip.pipeline")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_common_imports_nothing_heavy():
    for path in (PACKAGE / "common").rglob("*.py"):
        heavy = {n for n in _imports(path) if n.split(".")[0] in ("torch", "ase", "aiida", "pysisyphus", "sella")}
        assert not heavy, f"{path.name} imports {heavy}"


def test_workflows_load_without_torch_pysisyphus_or_sella():
    """A fresh interpreter (as a daemon worker) imports the work chains without the chemistry stack."""
    code = (
        "import sys, aiida_hip.workflows, aiida_hip.calcjobs, aiida_hip.parsers;"
        "print(sorted(m for m in ('torch', 'pysisyphus', 'sella', 'ase', 'aiida_hip.pipeline') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_function_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_every_failed_outcome_has_one_unique_exit_code():
    assert set(exit_codes.OUTCOME_EXIT_CODES) == set(Outcome) - {Outcome.SUCCESS}
    statuses = [code.status for code in exit_codes.ALL]
    labels = [code.label for code in exit_codes.ALL]
    assert len(set(statuses)) == len(statuses) and len(set(labels)) == len(labels)
    for code in exit_codes.ALL:
        assert code.status // 100 in (3, 4, 5) and code.label.startswith("ERROR_")
    assert exit_codes.outcome_of(0) is Outcome.SUCCESS
    assert exit_codes.outcome_of(502) is Outcome.IRC_SAME_ENDS and exit_codes.outcome_of(301) is None


def test_readme_exit_code_table_is_the_table():
    text = README.read_text()
    block = re.search(r"<!-- exit-codes:begin -->\n(.*?)\n<!-- exit-codes:end -->", text, re.S)
    assert block is not None, "README lost its exit-code table markers"
    assert block.group(1).strip() == exit_codes.markdown_table().strip()


def test_auto_is_a_list_of_single_routes():
    assert Route.AUTO.attempts == AUTO_ORDER == (Route.SELLA, Route.PYSISYPHUS)
    assert Route.SELLA.attempts == (Route.SELLA,)
    assert choices(Calculator) == ["hip", "xtb", "dft"] and not Calculator.HIP.is_reference
    assert [m for m in HessianMode if m.uses_model] == [
        HessianMode.PREDICTED,
        HessianMode.AUTOGRAD,
        HessianMode.FINITE_DIFFERENCE,
    ]


def test_level_rules():
    assert Level().uses_model and not Level().uses_reference
    assert Level(calculator="xtb", hessian="finite-difference").uses_model  # a model Hessian on the xTB surface
    assert not Level(calculator="xtb", hessian="reference").uses_model
    with pytest.raises(LevelError, match="neutral closed-shell"):
        Level(charge=1)
    with pytest.raises(LevelError, match="neutral closed-shell"):
        Level(calculator="xtb", hessian="predicted", multiplicity=2)
    assert Level(calculator="xtb", hessian="reference", charge=-1, multiplicity=2).charge == -1
    with pytest.raises(LevelError, match="unknown level key"):
        Level.from_dict({"calculator": "xtb", "functional": "b3lyp"})
    with pytest.raises(LevelError, match="hessian must be one of"):
        Level(hessian="exact")
    assert Level().judging_hessian("exact") == "autograd"
    assert Level(calculator="xtb", hessian="none").judging_hessian("exact") == "reference"
    assert Level().judging_hessian(None) is None


def test_reaction_checks_on_arrays():
    water = ([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    moved = ([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [0.5, 0.8, 0]])
    check_reaction(water, moved)
    with pytest.raises(ReactionInputError, match="same geometry"):
        check_reaction(water, water)
    with pytest.raises(ReactionInputError, match="same elements in the same atom order"):
        check_reaction(water, ([1, 8, 1], moved[1]))
    with pytest.raises(ReactionInputError, match="overlapping atoms"):
        check_reaction(water, ([8, 1, 1], [[0, 0, 0], [0.1, 0, 0], [0.5, 0.8, 0]]))


def test_the_pipeline_result_carries_the_result_schema():
    from aiida_hip.common.result import RESULT_FIELDS, result_row
    from aiida_hip.pipeline.ts_search import TSSearchResult

    assert set(RESULT_FIELDS) <= set(TSSearchResult().to_dict())
    row = result_row({"status": "success", "thermochemistry": {"rate_forward_per_s": 2.0}, "irc_intended": 1})
    assert row["rate_forward_per_s"] == 2.0 and row["irc_intended"] is True and row["message"] == ""
    assert result_row(None)["status"] == "no_result"
