"""Model card for a shipped checkpoint: data, level of theory, elements, metrics, SHA-256, the command."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from .checkpoints import read_checkpoint, sha256


def write_model_card(
    checkpoint: str | Path, evaluation_md: str, data_card: str, command: str, device: str, output: str | Path
) -> Path:
    payload = read_checkpoint(checkpoint)
    cfg = payload["config"]
    meta = payload.get("metadata", {})
    symbols = {1: "H", 6: "C", 7: "N", 8: "O"}
    text = [
        "# HIP default checkpoint",
        "",
        f"- file: `{Path(checkpoint).name}`, SHA-256 `{sha256(checkpoint)}`",
        f"- written: {datetime.date.today().isoformat()}, trained on: {device}",
        "- level of theory: GFN2-xTB (tblite); units eV, Angstrom, eV/A, eV/A^2",
        "- elements: " + ", ".join(symbols.get(z, str(z)) for z in cfg["elements"]),
        f"- architecture: `{json.dumps(cfg)}`",
        f"- last training stage: {meta.get('stage')}, epoch {meta.get('epoch')}",
        "",
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Evaluation on held-out test reactions",
        "",
        evaluation_md,
        "",
        "## Training data",
        "",
        data_card,
    ]
    output = Path(output)
    output.write_text("\n".join(text) + "\n")
    return output
