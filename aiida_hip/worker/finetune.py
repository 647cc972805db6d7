"""The worker's ``finetune`` job: a checkpoint and a shard folder in, a fine-tuned checkpoint out.

Training runs on the compute node like every other stage (the daemon only stages files). The model file
is written before ``results.json``, so a job killed in between leaves no results and the parser reports an
incomplete output; the work chain then runs the fine-tune again from the same inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..dataset.learn import finetune_checkpoint
from ..hip.data import DatasetError
from ..hip.finetune import FinetuneError, FinetuneSettings
from .io import (
    DATA_FOLDER,
    EXIT_OK,
    FINETUNE_STAGE,
    MODEL_FILE,
    RESULTS_FILE,
    SCHEMA,
    WorkerInputError,
    jsonable,
    record_failure,
)


def run_finetune_job(job: dict, base: Path, out: Path, resolve: Callable) -> int:
    """Run the job ``job`` (read from a file in ``base``); ``resolve`` checks the checkpoint's hash."""
    t0 = time.perf_counter()
    results: dict = {"schema": SCHEMA, "stage": FINETUNE_STAGE, "status": "error", "error": None}

    def finish(code: int) -> int:
        results["wall_time_s"] = time.perf_counter() - t0
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=jsonable))
        return code

    try:
        torch.set_num_threads(int(job.get("threads") or 1))
        settings = dict(job.get("settings") or {})
        new_level, lineage = bool(settings.pop("new_level", False)), settings.pop("lineage", {})
        checkpoint, model_info = resolve(job.get("checkpoint"), base)
        folder = base / str(job.get("data") or DATA_FOLDER)
        if not folder.is_dir():
            raise WorkerInputError(f"the shard folder {folder.name}/ was not staged")
        report = finetune_checkpoint(
            Path(checkpoint) if checkpoint else None,
            [folder],
            out / MODEL_FILE,
            FinetuneSettings(**settings),
            new_level=new_level,
            lineage=lineage,
        )
    except (WorkerInputError, DatasetError, FinetuneError, TypeError) as exc:
        return finish(record_failure(results, exc, invalid_input=True))
    except Exception as exc:
        return finish(record_failure(results, exc))
    results |= {"status": "done", "report": report, "model_file": MODEL_FILE, "parent": model_info}
    return finish(EXIT_OK)
