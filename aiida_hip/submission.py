"""Throttled, restartable submission of large reaction batches to the AiiDA daemon.

A batch of thousands of reactions must not become thousands of active work chains at once (the
daemon's slots, the scheduler's queue and the database all suffer), and a submission script that
dies half-way must be re-runnable without submitting anything twice. So each unit (one reaction as a
``hip.ts_search``, or ``reactions_per_job`` reactions as one packed ``hip.reaction_batch``) carries the
keys of its reactions in its extras, and lives in one group; a round submits only reactions whose
key no node in the group carries yet, and only as many units as ``max_active`` leaves room for. The
same idea as aiida-submission-controller, built on aiida-core alone.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiida import orm
from aiida.engine import submit
from aiida.engine.daemon.client import get_daemon_client
from aiida.manage import get_manager

KEYS_EXTRA = "aiida_hip_reaction_keys"


class SubmissionError(RuntimeError):
    """The profile cannot take submissions now (broker or database unreachable, daemon stopped)."""


def reaction_key(reactant: orm.StructureData, product: orm.StructureData, recipe: dict) -> str:
    """SHA-256 of what defines a reaction's search: both geometries (to 1e-5 A) and the recipe
    (protocol, level, route, ...). The same reaction with another recipe is another search."""

    def geometry(structure: orm.StructureData) -> list:
        return [
            [structure.get_kind(site.kind_name).symbol, *[round(float(x), 5) for x in site.position]]
            for site in structure.sites
        ]

    payload = {"reactant": geometry(reactant), "product": geometry(product), "recipe": recipe}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_services(timeout: float = 3.0) -> None:
    """Fail fast, with a message that says what to start, when the loaded profile cannot take a submission."""
    manager = get_manager()
    profile = manager.get_profile()
    try:
        manager.get_profile_storage()
        orm.QueryBuilder().append(orm.Node, project=["id"]).limit(1).all()
    except Exception as exc:
        storage = profile.storage_config
        where = f" at {storage.get('database_hostname')}:{storage.get('database_port')}" if storage else ""
        raise SubmissionError(
            f"the database of profile {profile.name!r}{where} cannot be reached: {type(exc).__name__}: {exc}. "
            "Start PostgreSQL (pg_ctlcluster <version> main start) and try again."
        ) from exc
    broker = profile.process_control_backend
    config = profile.process_control_config
    if broker == "core.rabbitmq":
        host, port = config.get("broker_host", "127.0.0.1"), int(config.get("broker_port", 5672))
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise SubmissionError(
                f"RabbitMQ of profile {profile.name!r} at {host}:{port} cannot be reached ({exc}). "
                "Start it (rabbitmq-server -detached) and try again; nothing was submitted."
            ) from exc
    elif broker is None:
        raise SubmissionError(f"profile {profile.name!r} has no broker: it can run processes but not submit them")
    if not get_daemon_client(profile.name).is_daemon_running:
        raise SubmissionError(
            f"the daemon of profile {profile.name!r} is not running: `verdi -p {profile.name} daemon start 2`"
        )


@dataclass
class Unit:
    """What one submission carries: the reactions (name -> (reactant, product)) and their keys."""

    reactions: dict[str, tuple[orm.StructureData, orm.StructureData]]
    keys: list[str] = field(default_factory=list)


@dataclass
class ThrottledSubmitter:
    """Submit ``reactions`` into ``group_label``: at most ``max_active`` unfinished units, each key once.

    A unit is ``reactions_per_job`` reactions not yet submitted (formed afresh each round, so a
    re-run with more reactions never re-packs a submitted one); ``make_builder(unit)`` returns its
    builder. ``submit_round`` is one pass (what a cron job or a loop calls); ``run`` loops until
    every reaction is submitted (and, with ``wait``, finished).
    """

    group_label: str
    reactions: dict[str, tuple[orm.StructureData, orm.StructureData]]
    recipe: dict
    make_builder: Callable[[Unit], object]
    max_active: int = 8
    reactions_per_job: int = 1
    echo: Callable[[str], None] = print

    def __post_init__(self) -> None:
        if self.max_active < 1 or self.reactions_per_job < 1:
            raise ValueError("max_active and reactions_per_job must be at least 1")
        self.group, _ = orm.Group.collection.get_or_create(self.group_label)
        self.keys = {name: reaction_key(*pair, self.recipe) for name, pair in self.reactions.items()}

    def _members(self) -> list[orm.ProcessNode]:
        qb = orm.QueryBuilder().append(orm.Group, filters={"id": self.group.pk}, tag="group")
        qb.append(orm.ProcessNode, with_group="group", filters={"extras": {"has_key": KEYS_EXTRA}})
        return qb.all(flat=True)

    def submitted_keys(self) -> set[str]:
        return {key for node in self._members() for key in node.base.extras.get(KEYS_EXTRA, [])}

    def active(self) -> list[orm.ProcessNode]:
        return [node for node in self._members() if not node.is_terminated]

    def pending(self) -> list[str]:
        """Names of the reactions no unit in the group carries yet (sorted)."""
        done = self.submitted_keys()
        return [name for name in sorted(self.reactions) if self.keys[name] not in done]

    def submit_round(self) -> list[orm.ProcessNode]:
        """Submit as many units of pending reactions as ``max_active`` leaves room for."""
        room = self.max_active - len(self.active())
        pending, submitted = self.pending(), []
        for start in range(0, min(len(pending), max(room, 0) * self.reactions_per_job), self.reactions_per_job):
            names = pending[start : start + self.reactions_per_job]
            unit = Unit({name: self.reactions[name] for name in names}, [self.keys[name] for name in names])
            node = submit(self.make_builder(unit))
            node.base.extras.set(KEYS_EXTRA, unit.keys)
            self.group.add_nodes(node)
            submitted.append(node)
            self.echo(f"submitted {node.process_label}<{node.pk}>: {', '.join(names)}")
        return submitted

    def run(self, poll: float = 10.0, wait: bool = False, timeout: float | None = None) -> int:
        """Rounds until every reaction is submitted (``wait``: and finished); returns how many units."""
        start, count = time.monotonic(), 0
        while True:
            count += len(self.submit_round())
            if not self.pending() and (not wait or not self.active()):
                return count
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(self.pending())} reaction(s) still unsubmitted after {timeout:.0f} s")
            time.sleep(poll)
