"""A batch from a folder through ``aiida-hip submit`` (3 reactions + 1 malformed), then the queries and
the ``reactions`` commands over what was stored."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from aiida import orm
from ase.io import read
from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.queries import reaction_detail, reaction_rows
from tests.conftest import REACTIONS

NAMES = ("hcn_hnc", "ch3nc_ch3cn", "vinyl_alcohol_acetaldehyde")
GROUP = "test/batch"


@pytest.fixture(scope="module")
def batch(aiida_profile, tmp_path_factory):
    from aiida.orm import InstalledCode

    from tests.conftest import worker_path

    computer = orm.Computer(
        label="localhost-batch",
        hostname="localhost",
        transport_type="core.local",
        scheduler_type="core.direct",
        workdir=str(tmp_path_factory.mktemp("work")),
    ).store()
    computer.configure()
    computer.set_minimum_job_poll_interval(0)
    code = InstalledCode(label="hip-worker", computer=computer, filepath_executable=str(worker_path())).store()
    folder = tmp_path_factory.mktemp("reactions")
    for name in NAMES:
        shutil.copytree(REACTIONS / name, folder / name)
    (folder / "broken").mkdir()
    (folder / "broken" / "reactant.xyz").write_text("garbage\n")
    (folder / "broken" / "product.xyz").write_text("garbage\n")
    args = ["submit", str(folder), "--code", code.full_label, "--calculator", "xtb", "--protocol", "fast"]
    args += ["--route", "sella", "--group", GROUP, "--max-concurrent", "3"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


def test_batch_runs_every_good_reaction(batch):
    assert batch.exit_code == 0, batch.output
    assert "skipped broken" in batch.output
    for name in NAMES:
        assert name in batch.output
    batch_node = (
        orm.QueryBuilder()
        .append(orm.WorkflowNode, filters={"process_type": {"like": "%reaction_batch"}})
        .all(flat=True)[-1]
    )
    summary = batch_node.outputs.summary.get_dict()
    assert summary["n_reactions"] == 3
    assert [row["reaction"] for row in summary["reactions"]] == sorted(NAMES)
    assert summary["n_success"] >= 2, summary  # xTB + Sella: all three verified when this was written
    assert len(orm.load_group(GROUP).nodes) == 3


def test_queries_from_provenance(batch):
    rows = reaction_rows(group=GROUP)
    assert sorted(row["reaction"] for row in rows) == sorted(NAMES)
    ok = [row for row in rows if row["status"] == "success"]
    assert ok and all(row["irc_intended"] and row["imaginary_frequency_cm1"] < 0 for row in ok)
    assert all(0.5 < row["barrier_forward_ev"] < 4.0 for row in ok)
    low = reaction_rows(group=GROUP, barrier_max=min(row["barrier_forward_ev"] for row in ok) + 1e-6)
    assert len(low) == 1
    detail = reaction_detail(ok[0]["pk"])
    processes = [stage["process"] for stage in detail["stages"]]
    assert processes.count("HipOptCalculation") == 2 and "HipIRCCalculation" in processes
    assert detail["summary"]["route"] == "sella"


def test_reactions_commands(batch, tmp_path):
    runner = CliRunner()
    listed = runner.invoke(main, ["reactions", "list", "--group", GROUP, "--json"], catch_exceptions=False)
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert len(rows) == 3
    table = runner.invoke(main, ["reactions", "list", "--group", GROUP, "--status", "success"], catch_exceptions=False)
    assert "hcn_hnc" in table.output or "ch3nc_ch3cn" in table.output
    out = tmp_path / "ts.xyz"
    exported = runner.invoke(main, ["reactions", "export", "--group", GROUP, "-o", str(out)], catch_exceptions=False)
    assert exported.exit_code == 0
    frames = read(out, index=":")
    assert len(frames) == sum(row["status"] == "success" for row in rows)
    assert all(f.info["imaginary_frequency_cm1"] < 0 for f in frames)
    table_file = tmp_path / "ts.csv"
    runner.invoke(
        main, ["reactions", "export", "--group", GROUP, "--format", "csv", "--status", "all", "-o", str(table_file)]
    )
    with open(table_file) as handle:
        assert len(list(csv.DictReader(handle))) == 3
    shown = runner.invoke(main, ["reactions", "show", str(rows[0]["pk"])])
    assert json.loads(shown.output)["reaction"] == rows[0]["reaction"]
    missing = runner.invoke(main, ["reactions", "show", "999999"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output
