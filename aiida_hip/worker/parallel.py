"""Many reactions of one job in several processes that share one model.

pysisyphus and Sella write into the working directory, which belongs to the whole process, so the
reactions of a packed job cannot run as threads of one process. Instead each reaction runs in a
reaction process, and the parent process keeps the one copy of the model (on the GPU where there is
one) and answers every energy, force and Hessian request of the reaction processes. Requests that
arrive together are answered with one batched forward (``HIPModel.predict_batch``): the seed's
batched Hessian speed-up, across reactions. At the GFN2-xTB level there is no model to share and the
reaction processes simply run side by side.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from ..pipeline import Evaluator, Level
from ..pipeline.calculators import cached_model
from .io import read_input
from .stages import run_reaction

#: messages of a reaction process to the parent
READY, RESULT, PREDICT = "ready", "result", "predict"
#: how long the server waits for the other busy processes' requests before it answers (s)
BATCH_WINDOW_S = 0.005


class ModelRequestError(ValueError):
    """The model refused a geometry (e.g. atoms on top of each other), as ``HIPModel.predict`` would."""


class ModelClient:
    """``HIPModel.predict`` in a reaction process: the parent's model server answers. ``config`` is the
    served model's (callers check elements against it)."""

    def __init__(self, connection: Connection, config=None) -> None:
        self.connection = connection
        self.config = config

    def predict(
        self, numbers, positions, hessian: str | None = "predicted", name: str = "molecule", forces: bool = True
    ) -> dict:
        """The server always returns forces (its batches mix callers): ``forces=False`` is accepted, not used."""
        self.connection.send((PREDICT, np.asarray(numbers), np.asarray(positions, dtype=np.float64), hessian, name))
        status, payload = self.connection.recv()
        if status != "ok":
            raise ModelRequestError(payload)
        return payload


@dataclass
class ServerStats:
    """What the model server did: requests, batched forwards, their sizes and the time in the model."""

    requests: int = 0
    batches: int = 0
    max_batch: int = 0
    model_seconds: float = 0.0
    batch_sizes: dict = field(default_factory=dict)
    processes: int = 0

    def add(self, size: int, seconds: float) -> None:
        self.requests += size
        self.batches += 1
        self.max_batch = max(self.max_batch, size)
        self.model_seconds += seconds
        self.batch_sizes[str(size)] = self.batch_sizes.get(str(size), 0) + 1

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_batch": self.requests / self.batches if self.batches else 0.0}


def serve(model, requests: list[tuple[Connection, tuple]], stats: ServerStats) -> None:
    """Answer ``requests`` with one batched forward per Hessian mode; a geometry the model refuses gets
    its own error, the others their results."""
    by_mode: dict = {}
    for connection, (_, numbers, positions, mode, name) in requests:
        by_mode.setdefault(mode, []).append((connection, numbers, positions, name))
    for mode, items in by_mode.items():
        t0 = time.perf_counter()
        try:
            outputs = model.predict_batch([(z, x) for _, z, x, _ in items], hessian=mode)
            replies = [("ok", out) for out in outputs]
        except Exception:  # find the geometry that broke the batch; answer the others
            replies = []
            for _, z, x, name in items:
                try:
                    replies.append(("ok", model.predict(z, x, hessian=mode)))
                except Exception as exc:
                    replies.append(("error", f"{name}: {type(exc).__name__}: {exc}"))
        stats.add(len(items), time.perf_counter() - t0)
        for (connection, *_), reply in zip(items, replies, strict=True):
            connection.send(reply)


def _reaction_process(
    connection: Connection, input_file: str, out: str, level: dict, threads: int | None, config
) -> None:
    """A reaction process: ask for a reaction, run its stage, send the entry back, until there is none."""
    os.environ["OMP_NUM_THREADS"] = str(threads or 1)
    import torch

    torch.set_num_threads(threads or 1)
    job = read_input(input_file)
    level_ = Level(**level)
    evaluator = Evaluator(level_, model=ModelClient(connection, config) if level_.uses_model else None)
    while True:
        connection.send((READY,))
        index = connection.recv()
        if index is None:
            return
        entry, arrays = run_reaction(job, index, job.reactions[index], evaluator, Path(out))
        connection.send((RESULT, index, entry, arrays))


def _lost(name: str, why: str) -> tuple[dict, dict]:
    return {"name": name, "outcome": "error", "message": why, "n_hessian_evaluations": 0,
            "n_gradient_evaluations": 0, "wall_time_s": 0.0}, {}  # fmt: skip


def run_parallel(job, input_file: Path, out: Path, evaluator, save: Callable[[dict, dict], None]) -> dict:
    """Run ``job``'s reactions in ``job.processes`` reaction processes, serving the model from here;
    ``save(entry, arrays)`` is called as each reaction finishes. Returns the server's statistics."""
    context = multiprocessing.get_context("spawn")  # tblite and torch do not survive fork
    model = None
    if evaluator.level.uses_model:  # the server needs the model now (an Evaluator may load it only when asked)
        model = evaluator.model or cached_model(evaluator.level.checkpoint, evaluator.level.device)
    stats = ServerStats(processes=min(job.processes, len(job.reactions)))
    connections, processes = [], []
    for _ in range(stats.processes):
        parent_end, child_end = context.Pipe()
        config = model.config if model is not None else None
        args = (child_end, str(input_file), str(out), evaluator.level.to_dict(), job.threads, config)
        process = context.Process(target=_reaction_process, args=args, daemon=True)
        process.start()
        child_end.close()
        connections.append(parent_end)
        processes.append(process)
    todo = deque(range(len(job.reactions)))
    running: dict[Connection, int] = {}
    live = set(connections)

    def handle(connection: Connection, requests: list) -> None:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the process died: its reaction is lost, the others go on
            live.discard(connection)
            index = running.pop(connection, None)
            if index is not None:
                save(*_lost(job.reactions[index].name, "the reaction process died (killed or out of memory)"))
            return
        if message[0] == READY:
            if todo:
                running[connection] = todo.popleft()
                connection.send(running[connection])
            else:
                connection.send(None)
                live.discard(connection)
        elif message[0] == RESULT:
            running.pop(connection, None)
            save(message[2], message[3])
        elif message[0] == PREDICT:
            requests.append((connection, message))

    try:
        while live:
            requests: list = []
            for connection in wait(list(live)):
                handle(connection, requests)
            if not requests:
                continue
            # the other busy processes are probably about to ask too: wait a moment to batch them
            deadline = time.perf_counter() + BATCH_WINDOW_S
            while True:
                asked = {c for c, _ in requests}
                pending = [c for c in live if c in running and c not in asked]
                remaining = deadline - time.perf_counter()
                if not pending or remaining <= 0:
                    break
                ready = wait(pending, timeout=remaining)
                if not ready:
                    break
                for connection in ready:
                    handle(connection, requests)
            serve(model, requests, stats)
    except Exception:
        for index in [*running.values(), *todo]:
            save(*_lost(job.reactions[index].name, f"the model server failed: {traceback.format_exc(limit=3)}"))
        raise
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    for index in todo:  # every reaction process died before these started
        save(*_lost(job.reactions[index].name, "no reaction process was left to run it"))
    return stats.to_dict()
