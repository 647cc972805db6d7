"""Evaluate a trained checkpoint on the test split, copy it into the package and write its model card.

    python scripts/ship_checkpoint.py CHECKPOINT DATA.h5 --device "..." --command "..." [--command ...]

The evaluation table (JSON + markdown) goes to benchmarks/results/hip_evaluation.*; the card records
the SHA-256, the data card, the device and the exact commands that produced the weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from aiida_hip.dataset.card import dataset_card
from aiida_hip.dataset.evaluate import evaluate, markdown, write
from aiida_hip.hip import load_model
from aiida_hip.hip.card import write_model_card
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT
from aiida_hip.hip.data import load_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--device", required=True, help="where it was trained, for the card")
    parser.add_argument("--command", action="append", required=True, help="one reproduction command per flag")
    parser.add_argument("--max-samples", type=int, default=300)
    parser.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="JSON already written by `aiida-hip evaluate` for this checkpoint (skips re-running it)",
    )
    args = parser.parse_args()
    if args.evaluation is not None:
        result = json.loads(args.evaluation.read_text())
    else:
        result = evaluate(load_model(args.checkpoint), load_samples(args.data, "test"), max_samples=args.max_samples)
    table = markdown(result, "Test split")
    write(result, Path("benchmarks/results/hip_evaluation"), "HIP vs autograd on the test split")
    shutil.copy(args.checkpoint, DEFAULT_CHECKPOINT)
    write_model_card(
        DEFAULT_CHECKPOINT,
        table,
        dataset_card(args.data),
        "\n".join(args.command),
        args.device,
        DEFAULT_CHECKPOINT.with_name("MODEL_CARD.md"),
    )
    print(table)


if __name__ == "__main__":
    main()
