#!/usr/bin/env bash
# Train the default HIP checkpoint on one CUDA GPU from a (packed) dataset; how the shipped weights were made.
#   bash scripts/train_gpu.sh DATA.h5 WORKDIR [ENERGY_FORCES_MINUTES] [HESSIAN_MINUTES]
# Stage 1: backbone on energy + forces; stage 2: the HIP head on the frozen backbone (Hessian MAE +
# eigen-subspace loss). Each stage stops at its wall-time budget or on early stopping and resumes
# from WORKDIR/<stage>_last.pt when run again. Needs only torch, e3nn, h5py, click,
# tqdm (a bare GPU image works: the repository root is put on PYTHONPATH).
# Pack a full dataset first (aiida-hip data pack) when it must travel.
set -euo pipefail
data="$1"; work="$2"; ef_minutes="${3:-4}"; hessian_minutes="${4:-3.5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
hip() { "$py" -c 'import sys; from aiida_hip.cli import main; sys.argv[0] = "aiida-hip"; main()' "$@"; }
common=(--data "$data" --workdir "$work" --epochs 500 --batch-size 64 --lr 3e-3 --patience 25 --device "${DEVICE:-cuda}")
hip train "${common[@]}" --stage energy_forces --max-minutes "$ef_minutes"
hip train "${common[@]}" --stage hessian --max-minutes "$hessian_minutes"
