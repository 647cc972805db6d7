#!/usr/bin/env bash
# The model-quality campaign, resumed from its committed state under data/campaign/: labels reactions
# into hash-checked shards, then trains from state.pt (exact resume; refused, with the reason, if the
# data or the config changed), evaluates on the test split and promotes the model to
# aiida_hip/hip/weights/hip_default.pt only if it beats the shipped one (history in MODEL_CARD.md).
# In the background, `nice -n 10` (19 starved it to a few % of a core beside two busy jobs), one core;
# progress goes to runs/campaign.log.
# Usage: bash scripts/train_campaign.sh --minutes N [--foreground] [--phase all|data|train]
#        [--train-after 400] [--label-target 1000] [--data-fraction 0.25] [--config FILE.json] [...]
#        (all options: .venv/bin/python -m aiida_hip.dataset.campaign --help)
# Commit data/campaign/ (and the weights and card, if promoted) before the session stops: only
# committed state accumulates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
# Shards and E+F files that left the tree live in the history: bring back what is missing (hash-checked).
.venv/bin/python -m aiida_hip.dataset.archive restore > /dev/null || echo "warning: archived data not restored" >&2
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
foreground=0
args=()
for a in "$@"; do
    if [ "$a" = "--foreground" ]; then foreground=1; else args+=("$a"); fi
done
mkdir -p runs
if [ "$foreground" = 1 ]; then
    exec nice -n 10 .venv/bin/python -m aiida_hip.dataset.campaign "${args[@]}"
fi
nohup nice -n 10 .venv/bin/python -m aiida_hip.dataset.campaign "${args[@]}" >> runs/campaign.log 2>&1 &
echo "campaign running in the background (pid $!), log: runs/campaign.log"
