"""The production set-up as a user has it: PostgreSQL + RabbitMQ profile, a daemon with two workers,
a one-node SLURM with a declared GPU. Everything is driven through the command line and separate
Python processes, never this test process's own AiiDA state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aiida_hip.cli.setup import drop_postgres_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Production:
    """A throw-away production profile in its own AIIDA_PATH."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        self.env = os.environ | {"AIIDA_PATH": str(path), "PATH": f"{BIN}:{os.environ['PATH']}"}

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def verdi(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "verdi"), "-p", self.name, *args, **kwargs)

    def aiida_hip(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "aiida-hip"), *args, **kwargs)

    def python(self, code: str, timeout: float = 120):
        """Run ``code`` with the profile loaded; it must print one JSON document, which is returned."""
        script = f"from aiida import load_profile\nload_profile({self.name!r})\n" + textwrap.dedent(code)
        done = self.run(str(BIN / "python"), "-c", script, timeout=timeout)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def wait_terminated(self, pks: list[int], timeout: float) -> None:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            states = self.python(
                f"""
                import json
                from aiida import orm
                print(json.dumps([orm.load_node(pk).is_terminated for pk in {pks!r}]))
                """
            )
            if all(states):
                return
            time.sleep(5)
        raise AssertionError(f"processes {pks} did not finish in {timeout:.0f} s\n{self.diagnosis()}")

    def diagnosis(self) -> str:
        """What a stuck run looks like: every unfinished process with its state and status, the queue's
        view of them, and the daemon log lines that name them (the tail alone hides the stuck one)."""
        unfinished = self.python(
            """
            import json
            from aiida import orm
            qb = orm.QueryBuilder().append(orm.ProcessNode, project=["id", "process_type", "label",
                "attributes.process_state", "attributes.process_status", "attributes.scheduler_state"])
            print(json.dumps([row for row in qb.all() if row[3] not in ("finished", "excepted", "killed")]))
            """
        )
        lines = [f"unfinished processes ({len(unfinished)}):"]
        lines += [
            f"  {pk} {ptype} {label!r} state={state} status={status!r} scheduler={sched}"
            for pk, ptype, label, state, status, sched in unfinished
        ]
        listed = self.verdi("process", "list", "-a", "-p", "1", check=False, timeout=60)
        lines += ["verdi process list -a -p 1:", listed.stdout[-4000:], listed.stderr[-1000:]]
        log = self.path / ".aiida" / "daemon" / "log" / f"aiida-{self.name}.log"
        if log.is_file():
            text = log.read_text().splitlines()
            marks = tuple(f"[{pk}|" for pk, *_ in unfinished) + tuple(f"<{pk}>" for pk, *_ in unfinished)
            named = [line for line in text if any(mark in line for mark in marks)]
            problems = [line for line in text if "ERROR" in line or "Traceback" in line or "WARNING" in line]
            lines += [
                "daemon log, lines naming them:",
                *named[-60:],
                "daemon log, errors and warnings:",
                *problems[-40:],
                "daemon log tail:",
                *text[-25:],
            ]
        return "\n".join(lines)


@pytest.fixture(scope="session")
def production(tmp_path_factory):
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], check=True, timeout=120)
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm-local.sh"), "start"], check=True, timeout=600)
    name = f"hip-it-{os.getpid()}"
    prod = Production(tmp_path_factory.mktemp("aiida"), name)
    prod.aiida_hip("setup", "--profile", name, "--production", "--slurm", "slurm-local")
    prod.verdi("daemon", "start", "2")
    yield prod
    prod.verdi("daemon", "stop", "--timeout", "120", check=False, timeout=200)
    drop_postgres_database(name)


@pytest.fixture(scope="session")
def reactions(tmp_path_factory) -> Path:
    """The eleven bundled reactions (the examples' five and the extended six) as a batch folder."""
    from aiida_hip.reactions import bundled_reactions

    folder = tmp_path_factory.mktemp("reactions")
    for name, (reactant, _) in bundled_reactions(extended=True).items():
        shutil.copytree(reactant.parent, folder / name)
    return folder


def subset(folder: Path, names: list[str], target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copytree(folder / name, target / name)
    return target
