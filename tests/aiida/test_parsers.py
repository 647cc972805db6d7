"""The stage parser on committed worker outputs (real xTB runs on HCN -> HNC) and on crafted bad ones:
every exit code of the stage CalcJobs is reachable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory, ParserFactory
from aiida.plugins.entry_point import format_entry_point_string

DATA = Path(__file__).resolve().parents[1] / "data" / "worker"


@pytest.fixture
def parse(aiida_localhost):
    """Run the ``hip.stage`` parser on a fake CalcJobNode of ``entry_point`` with ``files`` retrieved."""

    def run(entry_point: str, files: dict[str, bytes]):
        node = orm.CalcJobNode(
            computer=aiida_localhost, process_type=format_entry_point_string("aiida.calculations", entry_point)
        )
        node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
        node.store()
        retrieved = orm.FolderData()
        for name, content in files.items():
            retrieved.base.repository.put_object_from_bytes(content, name)
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="retrieved")
        retrieved.store()
        results, calcfunction = ParserFactory("hip.stage").parse_from_node(node, store_provenance=False)
        return results, calcfunction

    return run


def folder(name: str, **changes) -> dict[str, bytes]:
    """Committed worker output ``name``; ``changes`` are set on its first reaction."""
    files = {path.name: path.read_bytes() for path in (DATA / name).iterdir()}
    if changes:
        results = json.loads(files["results.json"])
        results["reactions"][0].update(changes)
        files["results.json"] = json.dumps(results).encode()
    return files


def test_tsopt_output_parsed(aiida_profile, parse):
    results, call = parse("hip.tsopt", folder("tsopt"))
    assert call.is_finished_ok
    hessian = results["hessian"]
    assert hessian.get_array("hessian").shape == (9, 9)
    assert hessian.get_array("frequencies")[0] < -1000  # the HCN -> HNC imaginary mode, cm^-1
    assert hessian.base.attributes.get("n_imaginary") == 1
    assert hessian.get_array("modes").shape == (3, 3, 3)  # 3N - 6 modes of a bent triatomic, N x 3 each
    assert not any(results["ts"].pbc) and len(results["ts"].sites) == 3
    assert results["output_parameters"]["outcome"] == "success"


def test_path_output_parsed(aiida_profile, parse):
    results, call = parse("hip.path", folder("path"))
    assert call.is_finished_ok
    tangent = results["tangent"]
    assert tangent.get_array("tangent").shape == (3, 3)
    assert tangent.base.attributes.get("curvature") < 0
    path = results["path"]
    assert path.numsteps == len(path.get_array("energies")) >= 9


def test_irc_output_parsed_and_same_ends_is_502(aiida_profile, parse):
    results, call = parse("hip.irc", folder("irc"))
    assert call.exit_status == CalculationFactory("hip.irc").exit_codes.ERROR_IRC_SAME_ENDS.status == 502
    assert "forward_end" in results and "backward_end" in results and "irc" in results
    assert results["output_parameters"]["endpoints"]["verdict"] == "same_ends"


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("path_failed", 400),
        ("not_converged", 401),
        ("fragmented", 403),
        ("irc_incomplete", 402),
        ("wrong_imaginary_count", 500),
        ("irc_unintended", 501),
        ("irc_same_ends", 502),
        ("invalid_input", 303),
        ("error", 304),
    ],
)
def test_every_outcome_has_its_exit_code(aiida_profile, parse, outcome, status):
    results, call = parse("hip.tsopt", folder("tsopt", outcome=outcome, message="crafted"))
    assert call.exit_status == status
    assert "crafted" in call.exit_message
    assert results["output_parameters"]["outcome"] == outcome  # what was computed is kept


def test_missing_output_is_301(aiida_profile, parse):
    _, call = parse("hip.tsopt", {"aiida.out": b""})
    assert call.exit_status == 301


@pytest.mark.parametrize("content", [b"{not json", b'{"reactions": []}', b"[]"])
def test_corrupt_output_is_302(aiida_profile, parse, content):
    _, call = parse("hip.tsopt", {"results.json": content})
    assert call.exit_status == 302


def test_worker_level_errors(aiida_profile, parse):
    error = {
        "schema": "aiida-hip-worker/1",
        "status": "error",
        "error": {"type": "invalid_input", "message": "bad hash"},
    }
    _, call = parse("hip.tsopt", {"results.json": json.dumps(error).encode()})
    assert call.exit_status == 303 and "bad hash" in call.exit_message
    error["error"]["type"] = "internal"
    _, call = parse("hip.tsopt", {"results.json": json.dumps(error).encode()})
    assert call.exit_status == 304
