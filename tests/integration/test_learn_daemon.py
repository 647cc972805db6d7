"""A ``learn`` batch on the production daemon survives a killed daemon worker and a killed fine-tune job
(issue 29): the batch resumes, every fine-tune round ends with a model (finished, or run again after the
job died), every reaction is searched exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# the bundled reactions under names of their own: the production profile is shared with the other tests, which
# count their searches by reaction name
REACTIONS = ["formamide_formimidic_acid", "hcn_hnc", "vinyl_alcohol_acetaldehyde"]
NAMES = [f"learn_{name}" for name in REACTIONS]


def _submit(production) -> int:
    return production.python(
        f"""
        import json
        from aiida import orm
        from aiida.engine import submit
        from aiida_hip.reactions import bundled_reactions
        from aiida_hip.workflows.reaction_batch import ReactionBatchWorkChain
        from ase.io import read

        def node(path):
            s = orm.StructureData(ase=read(path))
            s.pbc = (False, False, False)
            return s

        bundled = bundled_reactions(extended=True)
        pairs = {{f"learn_{{n}}": (node(bundled[n][0]), node(bundled[n][1])) for n in {REACTIONS!r}}}
        builder = ReactionBatchWorkChain.get_builder_from_protocol(
            orm.load_code("hip-worker@localhost"), pairs, protocol="fast", overrides={{"route": "sella"}},
            max_concurrent=1)
        # a long fine-tune (20 s): a window to kill the daemon and the job in
        builder.learn = orm.Dict({{"every": 1, "epochs": 100000, "max_minutes": 0.33}})
        builder.metadata.label = "learn-daemon"
        print(json.dumps(submit(builder).pk))
        """
    )


def _running_finetune(production) -> dict | None:
    return production.python(
        """
        import json
        from aiida import orm
        qb = orm.QueryBuilder().append(orm.CalcJobNode, filters={"process_type": {"like": "%hip.finetune"},
            "attributes.scheduler_state": "running"}, project=["*"])
        rows = qb.all(flat=True)
        print(json.dumps({"pk": rows[0].pk, "workdir": rows[0].get_remote_workdir()} if rows else None))
        """
    )


def _kill_processes_in(workdir: str) -> list[int]:
    """SIGKILL every process whose working directory is ``workdir`` (the job script and the worker)."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == workdir:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:
            continue
    return killed


def test_learn_batch_survives_a_killed_daemon_and_a_killed_finetune(production):
    batch = _submit(production)
    start, job = time.monotonic(), None
    while time.monotonic() - start < 600 and job is None:
        job = _running_finetune(production)
        time.sleep(1)
    assert job is not None, production.diagnosis()
    workers = production.python(
        """
        import json
        from aiida.engine.daemon.client import get_daemon_client
        print(json.dumps(sorted(int(pid) for pid in get_daemon_client().get_worker_info()["info"])))
        """
    )
    for pid in workers:  # the whole daemon dies while the fine-tune runs
        os.kill(pid, signal.SIGKILL)
    killed = _kill_processes_in(job["workdir"])  # and so does the fine-tune job itself (a node failing mid-run)
    assert killed, f"no process runs in {job['workdir']}"
    time.sleep(3)
    production.verdi("daemon", "stop", "--timeout", "120", timeout=200, check=False)
    production.verdi("process", "repair", timeout=200)
    production.verdi("daemon", "start", "2")
    production.wait_terminated([batch], timeout=1200)
    report = production.python(
        f"""
        import json
        from collections import Counter
        from aiida import orm
        batch = orm.load_node({batch})
        searches = [n.label for n in batch.called if n.process_type.endswith("hip.ts_search")]
        finetunes = [(n.pk, n.exit_status) for n in batch.called if n.process_type.endswith("hip.finetune")]
        labels = Counter(link.link_label for link in batch.base.links.get_outgoing().all()
                         if link.link_type.value.startswith("call"))
        print(json.dumps({{
            "exit_status": batch.exit_status,
            "learn": batch.outputs.summary.get_dict().get("learn") if "summary" in batch.outputs else None,
            "searches": sorted(searches),
            "finetunes": finetunes,
            "duplicated": [label for label, n in labels.items() if n > 1],
        }}))
        """
    )
    assert report["exit_status"] == 0, report
    assert report["searches"] == sorted(NAMES), report  # every reaction once
    assert report["duplicated"] == [], report
    rounds = report["learn"]
    assert len(rounds) == 2 and all(r.get("model") for r in rounds), report
    assert dict(report["finetunes"])[job["pk"]] == 301, report  # no results.json: its own exit code
    assert len(report["finetunes"]) >= 3, report  # the killed round ran again
