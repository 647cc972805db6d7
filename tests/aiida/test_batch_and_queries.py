"""A batch from a folder through ``aiida-hip submit`` (3 reactions + 1 malformed), then the queries and
the ``reactions`` commands over what was stored."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from aiida import orm
from ase.io import read
from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.queries import reaction_detail, reaction_rows
from tests.conftest import REACTIONS, local_worker_code

NAMES = ("hcn_hnc", "ch3nc_ch3cn", "vinyl_alcohol_acetaldehyde")
GROUP = "test/batch"


@pytest.fixture(scope="module")
def batch(aiida_profile, tmp_path_factory):
    code = local_worker_code("localhost-batch", tmp_path_factory.mktemp("work"))
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


def _chromium() -> str:
    """Debian's headless Chromium (scripts/test.sh installs it where it can); CI must have it."""
    import os

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: the report is tested in a real browser in CI")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _browser(chromium: str, url: str, *args: str) -> str:
    import subprocess

    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _near(image, colour: str, tolerance: int = 12) -> int:
    """Pixels of ``image`` (RGB array) within ``tolerance`` of the hex ``colour``."""
    import numpy as np

    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[..., :3].astype(int) - rgb).max(axis=-1) <= tolerance).sum())


def test_report_renders_in_a_browser(batch, tmp_path):
    """What a user does: write the page, open it in (headless) Chromium, look at it."""
    import os
    from pathlib import Path

    from PIL import Image

    from aiida_hip.report.plots import FORWARD_COLOUR, FUNNEL_COLOUR

    chromium = _chromium()
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", GROUP, "--out", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = reaction_rows(group=GROUP)
    n_ok = sum(row["status"] == "success" for row in rows)
    assert f"3 reactions, {n_ok} verified" in result.output

    dom = _browser(chromium, page.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    assert dom.count('<tr class="reaction') == 3
    for name in NAMES:
        assert f'<td class="name">{name}</td>' in dom
    for plot in ("plot-funnel", "plot-barriers", "plot-imaginary", "plot-profiles"):
        assert f'id="{plot}"' in dom
    assert dom.count('class="ts-link"') == sum(row["ts_pk"] is not None for row in rows)
    assert dom.count('class="thumbnail"') >= n_ok  # an IRC profile for every verified TS
    assert 'id="versions-table"' in dom and "aiida-core" in dom
    assert "No HIP model" in dom  # this batch ran at GFN2-xTB; the HIP provenance is tested with packed jobs

    shot = Path(os.environ.get("AIIDA_HIP_REPORT_SHOT", tmp_path / "report.png"))
    _browser(chromium, page.as_uri(), f"--screenshot={shot}", "--window-size=1280,4200")
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (4200, 1280)
    # the funnel's bars and the red of the barrier histogram / IRC thumbnails are painted, not alt text
    assert _near(image, FUNNEL_COLOUR) > 5000, "funnel bars not visible"
    assert _near(image, FORWARD_COLOUR) > 500, "barrier histogram / IRC profiles not visible"


def test_report_profiles_and_targets(batch):
    from aiida_hip.report import collect_report
    from aiida_hip.report.collect import ReportTargetError

    data = collect_report(GROUP)
    assert [e.row["reaction"] for e in data.entries] == sorted(NAMES)
    for entry in data.entries:
        if entry.row["status"] != "success":
            continue
        profile, row = entry.profile, entry.row
        assert profile is not None, row["reaction"]
        s, energy = np.asarray(profile["s_angstrom"]), np.asarray(profile["energy_ev"])
        ts = int(np.argmax(energy))
        assert s[ts] == 0.0 and energy[ts] == pytest.approx(row["barrier_forward_ev"], abs=1e-6)
        # reactant side first (s < 0, ends near 0 eV), product side last (near -reaction energy)
        assert s[0] < 0 < s[-1]
        assert energy[0] == pytest.approx(0.0, abs=0.3)
        assert energy[-1] == pytest.approx(row["barrier_forward_ev"] - row["barrier_reverse_ev"], abs=0.3)
        assert entry.ts_xyz.splitlines()[0].strip() == str(len(orm.load_node(row["ts_pk"]).sites))
    batch_node = (
        orm.QueryBuilder()
        .append(orm.WorkflowNode, filters={"process_type": {"like": "%reaction_batch"}})
        .all(flat=True)[-1]
    )
    by_pk = collect_report(str(batch_node.pk))
    assert sorted(e.row["pk"] for e in by_pk.entries) == sorted(e.row["pk"] for e in data.entries)
    with pytest.raises(ReportTargetError, match=r"not a hip\.reaction_batch"):
        collect_report(str(data.entries[0].row["pk"]))
    with pytest.raises(ReportTargetError, match="no group labelled"):
        collect_report("no/such/group")
    missing = CliRunner().invoke(main, ["report", "no/such/group"])
    assert missing.exit_code != 0 and "no group labelled" in missing.output and "Traceback" not in missing.output


def test_report_names_the_hip_checkpoint(aiida_profile):
    """The provenance table resolves a row's SHA-256 to its ``hip.model`` node and architecture."""
    from aiida_hip.data import HipModelData
    from aiida_hip.report.collect import _models

    node = HipModelData.from_checkpoint()
    (info,) = _models({node.sha256})
    assert info["pk"] == node.pk and json.loads(info["architecture"]) == node.architecture
    (unknown,) = _models({"0" * 64})
    assert unknown["pk"] is None and unknown["sha256"] == "0" * 64
