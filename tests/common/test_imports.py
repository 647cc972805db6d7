"""Imports inside functions only at the heavy adapter edges (issue 21).

Every other import sits at the top of its module. A function-level import passes only when moving it to
the top would load something heavy that the module does not load already: torch (e3nn), pysisyphus,
Sella, tblite, PySCF or RDKit (which the GPU image lacks: the campaign's training path runs there without it),
directly or through an ``aiida_hip`` module that imports them at its top
(``aiida_hip.hip`` and everything under it imports torch). In the modules the AiiDA daemon loads (work
chains, CalcJobs, parsers, the data node types, the worker's file formats, the L0 vocabulary), ASE and
``aiida_hip.pipeline`` count as heavy too: those layers load without them (test_vocabulary.py).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aiida_hip"

HEAVY_LIBRARIES = frozenset({"torch", "e3nn", "pysisyphus", "sella", "tblite", "pyscf", "rdkit"})
DAEMON_MODULES = (
    "aiida_hip.common",
    "aiida_hip.calcjobs",
    "aiida_hip.parsers",
    "aiida_hip.workflows",
    "aiida_hip.data",
    "aiida_hip.worker.io",
)
DAEMON_HEAVY = HEAVY_LIBRARIES | {"ase", "aiida_hip.pipeline"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """Absolute names of the modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    name = ".".join(part for part in (base if node.level else "", node.module or "") if part)
    return [name] + [f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in MODULES]


def _imports(module: str) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of ``module`` and whether it runs inside a function."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, in_function))
            elif isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                continue
            else:
                visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(MODULES[module].read_text()), False)
    return found


@cache
def _loaded(name: str) -> frozenset[str]:
    """Module names that importing ``name`` loads: its packages and, for our own, their top-level imports."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        parents = [".".join(current.split(".")[: i + 1]) for i in range(current.count(".") + 1)]
        for module in parents:
            if module in seen:
                continue
            seen.add(module)
            if module in MODULES:
                todo += [t for node, inline in _imports(module) if not inline for t in _targets(node, module)]
    return frozenset(seen)


def _heavy(names: frozenset[str], kinds: frozenset[str]) -> set[str]:
    """The ``kinds`` (module names) that ``names`` holds, themselves or as a submodule."""
    return {kind for kind in kinds for name in names if name == kind or name.startswith(kind + ".")}


def test_function_level_imports_only_at_heavy_edges():
    bad = []
    for module, path in sorted(MODULES.items()):
        kinds = DAEMON_HEAVY if _heavy(frozenset({module}), frozenset(DAEMON_MODULES)) else HEAVY_LIBRARIES
        at_top = _heavy(_loaded(module), kinds)
        for node, inline in _imports(module):
            if not inline:
                continue
            written = "." * getattr(node, "level", 0) + (getattr(node, "module", None) or node.names[0].name)
            saves = set().union(*(_heavy(_loaded(t), kinds) for t in _targets(node, module))) - at_top
            where = str(path.relative_to(PACKAGE))
            if not saves:
                bad.append(f"aiida_hip/{where}:{node.lineno}: {written}")
    assert not bad, (
        "function-level imports that would load nothing heavy at the top of their module (move them there):\n"
        + "\n".join(bad)
    )


def test_the_scan_sees_torch_behind_our_own_modules():
    """The rule's premise: the model package is heavy, the daemon layers and the CLI entry point are not."""
    assert "torch" in _loaded("aiida_hip.hip.checkpoints")
    assert "ase" in _loaded("aiida_hip.chem.thermo")
    for light in ("aiida_hip.workflows", "aiida_hip.calcjobs", "aiida_hip.parsers", "aiida_hip.cli"):
        assert not _heavy(_loaded(light), DAEMON_HEAVY), light
