#!/usr/bin/env bash
# Reproduce the shipped checkpoint: dataset (resumable), two-stage training, evaluation, model card.
# Long: hours on 2 CPU cores. DEVICE=cuda uses a GPU for training where one exists.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
DATA="${DATA:-data/hip_xtb.h5}"
WORK="${WORK:-runs/default}"
DEVICE="${DEVICE:-cpu}"
EPOCHS="${EPOCHS:-30}"
.venv/bin/aiida-hip data generate --output "$DATA" --workers "${WORKERS:-2}"
.venv/bin/aiida-hip train --data "$DATA" --workdir "$WORK" --device "$DEVICE" --epochs "$EPOCHS" \
    ${MAX_MINUTES:+--max-minutes "$MAX_MINUTES"}
.venv/bin/python - "$DATA" "$WORK" "$DEVICE" <<'PY'
import shutil, sys
from pathlib import Path
from aiida_hip.dataset.card import dataset_card
from aiida_hip.dataset.evaluate import evaluate, markdown, write
from aiida_hip.hip import load_model
from aiida_hip.hip.card import write_model_card
from aiida_hip.hip.checkpoints import DEFAULT_CHECKPOINT
from aiida_hip.hip.data import load_samples

data, work, device = sys.argv[1:4]
best = Path(work) / "hessian_best.pt"
result = evaluate(load_model(best), load_samples(data, "test"), max_samples=300)
write(result, Path("benchmarks/results/hip_evaluation"), "HIP vs autograd on the test split")
shutil.copy(best, DEFAULT_CHECKPOINT)
command = "bash scripts/train_default.sh  # DATA, WORK, DEVICE, EPOCHS, MAX_MINUTES, WORKERS as set"
write_model_card(DEFAULT_CHECKPOINT, markdown(result, "Test split"), dataset_card(data), command, device,
                 DEFAULT_CHECKPOINT.with_name("MODEL_CARD.md"))
print(markdown(result, "Test split"))
PY
