"""Production scale (issue 7): daemon on PostgreSQL + RabbitMQ surviving a killed worker, packed jobs
through a real SLURM with a GPU request, throttled submission that never submits twice, and clear
errors when a service is down. Real xTB runs (GFN2-xTB energies and exact Hessians, Sella route)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from .conftest import subset

pytestmark = pytest.mark.integration

XTB = ("--calculator", "xtb", "--protocol", "fast", "--route", "sella")
DAEMON_REACTIONS = [
    "ch3nc_ch3cn",
    "cyanamide_carbodiimide",
    "formamide_formimidic_acid",
    "glycolaldehyde_enediol",
    "hcn_hnc",
    "isocyanic_cyanic_acid",
    "nitrosomethane_formaldoxime",
    "vinyl_alcohol_acetaldehyde",
]


def test_down_services_give_clear_errors_fast(production, reactions, tmp_path):
    """A profile whose RabbitMQ (or PostgreSQL) port has nothing behind it: a message, no hang, no traceback."""
    config = json.loads((production.path / ".aiida" / "config.json").read_text())
    down = (("RabbitMQ", ("process_control", "broker_port")), ("storage", ("storage", "database_port")))
    for service, setting in down:
        broken = json.loads(json.dumps(config))
        broken["profiles"][production.name][setting[0]]["config"][setting[1]] = 5999
        path = tmp_path / service / ".aiida"
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps(broken))
        env = production.env | {"AIIDA_PATH": str(path.parent)}
        start = time.monotonic()
        done = subprocess.run(
            ["aiida-hip", "submit", str(reactions), "-p", production.name, "--daemon", "--group", "x", *XTB],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert time.monotonic() - start < 30
        assert service in done.stderr and "5999" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def submitted_reactions(output: str) -> set[str]:
    """Reaction names of the units a ``submit --max-active`` call reports as submitted."""
    found = re.findall(r"submitted ReactionBatchWorkChain<\d+>: (.+)", output)
    return {name.strip() for line in found for name in line.split(",")}


def test_throttled_submission_never_submits_twice(production, reactions, tmp_path):
    folder = subset(reactions, DAEMON_REACTIONS[:6], tmp_path / "six")
    group = "it/throttled"
    args = ["submit", str(folder), "-p", production.name, "--daemon", "--group", group, *XTB]
    args += ["--reactions-per-job", "2", "--max-active", "2"]
    first = production.aiida_hip(*args)
    assert first.stdout.count("submitted ReactionBatchWorkChain") == 2, first.stdout
    assert "2 reaction(s) left" in first.stdout
    again = production.aiida_hip(*args)
    # only a unit that finished in between frees a slot (a loaded machine is slow to start the command);
    # a reaction already submitted is never submitted again
    assert "4 of 6 reactions are already in group" in again.stdout, again.stdout
    assert not submitted_reactions(first.stdout) & submitted_reactions(again.stdout), again.stdout
    production.aiida_hip(*args, "--wait", "--poll", "2", timeout=600)
    final = production.aiida_hip(*args)
    assert "6 of 6 reactions are already in group" in final.stdout and "0 reaction(s) left" in final.stdout
    units = production.python(
        f"""
        import json
        from aiida import orm
        from aiida_hip.submission import KEYS_EXTRA
        nodes = [n for n in orm.load_group({group!r}).nodes if KEYS_EXTRA in n.base.extras.keys()]
        print(json.dumps([[n.pk, n.base.extras.get(KEYS_EXTRA)] for n in nodes]))
        """
    )
    keys = [key for _, unit_keys in units for key in unit_keys]
    assert len(units) == 3 and len(keys) == 6 and len(set(keys)) == 6
    production.wait_terminated([pk for pk, _ in units], timeout=600)
    rows = production.python(
        f"""
        import json
        from aiida_hip.queries import reaction_rows
        print(json.dumps(reaction_rows(group={group!r})))
        """
    )
    assert sorted(row["reaction"] for row in rows) == sorted(DAEMON_REACTIONS[:6])  # each exactly once


def test_daemon_batch_survives_a_killed_worker(production, reactions, tmp_path):
    folder = subset(reactions, DAEMON_REACTIONS, tmp_path / "eight")
    group = "it/daemon"
    production.aiida_hip(
        "submit", str(folder), "-p", production.name, "--daemon", "--group", group, "--max-concurrent", "8", *XTB
    )
    batch = production.python(
        """
        import json
        from aiida import orm
        qb = orm.QueryBuilder().append(orm.WorkflowNode, filters={"label": "eight"}, project="id")
        print(json.dumps(max(qb.all(flat=True))))
        """
    )
    # wait until stage jobs are running, then kill -9 a daemon worker in the middle of the batch
    start = time.monotonic()
    while time.monotonic() - start < 120:
        running = production.python(
            """
            import json
            from aiida import orm
            qb = orm.QueryBuilder().append(orm.CalcJobNode, filters={"attributes.process_state": "waiting"})
            print(json.dumps(qb.count()))
            """
        )
        if running >= 2:
            break
        time.sleep(2)
    workers = production.python(
        """
        import json
        from aiida.engine.daemon.client import get_daemon_client
        print(json.dumps(sorted(int(pid) for pid in get_daemon_client().get_worker_info()["info"])))
        """
    )
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    time.sleep(3)
    production.verdi("daemon", "stop", "--timeout", "120", timeout=200)
    # a child stored by the killed worker whose task never reached the broker is revived here
    production.verdi("process", "repair", timeout=200)
    production.verdi("daemon", "start", "2")
    production.wait_terminated([batch], timeout=900)

    report = production.python(
        f"""
        import json
        from collections import Counter
        from aiida import orm
        batch = orm.load_node({batch})
        searches = [n for n in batch.called if n.process_type.endswith("hip.ts_search")]
        duplicated = []
        for node in orm.QueryBuilder().append(orm.WorkflowNode).all(flat=True):
            labels = Counter(link.link_label for link in node.base.links.get_outgoing().all()
                             if link.link_type.value.startswith("call"))
            duplicated += [(node.pk, label) for label, n in labels.items() if n > 1]
        qb = orm.QueryBuilder().append(orm.ProcessNode, project="attributes.process_state")
        states = Counter(str(s) for s in qb.all(flat=True))
        filters = {{"process_type": {{"like": "%hip.ts_search"}}, "label": {{"in": {DAEMON_REACTIONS!r}}}}}
        print(json.dumps({{
            "exit_status": batch.exit_status,
            "summary": batch.outputs.summary.get_dict() if "summary" in batch.outputs else None,
            "searches": sorted(n.label for n in searches),
            "all_searches": orm.QueryBuilder().append(orm.WorkflowNode, filters=filters).count(),
            "duplicated": duplicated,
            "states": states,
        }}))
        """
    )
    assert report["exit_status"] == 0, report
    summary = report["summary"]
    assert [row["reaction"] for row in summary["reactions"]] == sorted(DAEMON_REACTIONS)
    assert "no_result" not in summary["counts"]  # every reaction finished: nothing lost
    assert report["searches"] == sorted(DAEMON_REACTIONS) and report["all_searches"] == len(DAEMON_REACTIONS)
    assert report["duplicated"] == []  # no stage ran twice under the same work chain
    assert set(report["states"]) == {"finished"}, report["states"]  # nothing excepted, killed or stuck
    assert summary["n_success"] >= 6, summary


def test_packed_jobs_through_slurm_with_a_gpu_request(production, reactions):
    group = "it/slurm"
    production.aiida_hip(
        "submit", str(reactions), "-p", production.name, "--daemon", "--group", group, "--code",
        "hip-worker@slurm-local", "--reactions-per-job", "4", "--max-concurrent", "3", "--gpus", "1",
        "--queue", "debug", "--walltime", "1800", *XTB,
    )  # fmt: skip
    batch = production.python(
        f"""
        import json
        from aiida import orm
        qb = orm.QueryBuilder().append(orm.WorkflowNode, filters={{"label": {reactions.name!r}}}, project="id")
        print(json.dumps(max(qb.all(flat=True))))
        """
    )
    production.wait_terminated([batch], timeout=900)
    report = production.python(
        f"""
        import json
        from pathlib import Path
        from aiida import orm
        batch = orm.load_node({batch})
        jobs = [n for n in batch.called if n.process_type.endswith("hip.ts_batch")]
        print(json.dumps({{
            "exit_status": batch.exit_status,
            "summary": batch.outputs.summary.get_dict(),
            "jobs": [{{
                "reactions": sorted(job.inputs.reactants),
                "job_id": job.get_job_id(),
                "computer": job.computer.label,
                "script": (Path(job.get_remote_workdir()) / "_aiidasubmit.sh").read_text(),
                "exit_status": job.exit_status,
            }} for job in jobs],
        }}))
        """
    )
    assert report["exit_status"] == 0, report
    jobs = report["jobs"]
    assert sorted(len(job["reactions"]) for job in jobs) == [3, 4, 4]
    packed = [name for job in jobs for name in job["reactions"]]
    assert len(packed) == len(set(packed)) == 11  # every reaction in exactly one job
    for job in jobs:
        assert job["computer"] == "slurm-local" and job["job_id"] and job["exit_status"] == 0
        assert "#SBATCH --gres=gpu:1" in job["script"]
        assert "#SBATCH --partition=debug" in job["script"]
        assert "#SBATCH --time=00:30:00" in job["script"]
    summary = report["summary"]
    assert summary["n_reactions"] == 11 and "no_result" not in summary["counts"]
    assert summary["n_success"] >= 8, summary


def test_run_here_on_the_production_profile_goes_on_as_soon_as_a_child_finishes(production, reactions, tmp_path):
    """`aiida-hip submit` without --daemon (and `verdi run`) use a local runner with no broker connection,
    which hears of a finished child only by polling: every step of a TS search waited up to
    `runner.poll.interval` (60 s by default) before the profile set it to 1 s."""
    folder = subset(reactions, ["hcn_hnc"], tmp_path / "run-here")
    production.aiida_hip("submit", str(folder), "-p", production.name, *XTB, timeout=600)
    gaps = production.python(
        f"""
        import json
        from aiida import orm
        qb = orm.QueryBuilder().append(orm.WorkflowNode, filters={{"label": {folder.name!r}}}, project="id")
        batch = orm.load_node(max(qb.all(flat=True)))
        gaps = []
        def walk(parent):
            children = sorted(parent.called, key=lambda node: node.ctime)
            ends = [child.mtime for child in children]
            starts = [child.ctime for child in children[1:]] + [parent.mtime]
            gaps.extend((start - end).total_seconds() for end, start in zip(ends, starts))
            for child in children:
                if isinstance(child, orm.WorkflowNode):
                    walk(child)
        walk(batch)
        print(json.dumps({{"exit_status": batch.exit_status, "gaps": gaps}}))
        """
    )
    assert gaps["exit_status"] == 0, gaps
    assert len(gaps["gaps"]) >= 4, gaps  # the search's stages, each waited for
    assert max(gaps["gaps"]) < 10, gaps
