#!/usr/bin/env bash
# The campaign on a lent GPU: the same trainer, state and data as on the CPU, a few minutes on cuda.
#   here:   bash scripts/gpu_campaign.sh prepare        # the one wheel the GPU image lacks (ase) into .whl/
#   there:  bash scripts/gpu_campaign.sh train [MINUTES] # device run, carry [".whl"]; state and log under $OUT
#   here:   bash scripts/gpu_campaign.sh adopt DIR      # DIR: where the device call put $OUT's files
# train: installs .whl/*.whl into /tmp/site, copies the campaign state (STATE, default data/campaign/state.pt)
# to $OUT, trains it there with python -m aiida_hip.dataset.campaign --phase train --no-promote on $DEVICE
# (default cuda) for MINUTES (default 8), saving every minute, and writes $OUT/campaign.log. Only torch,
# e3nn, h5py, numpy, scipy and ase are needed (the GPU image has all but ase). adopt checks that the
# returned state loads and is ahead of the committed one, then replaces it; the next CPU campaign run
# evaluates it and decides the promotion as usual. A tiny CPU run of the same path (tests/hip/
# test_gpu_script.py): DEVICE=cpu OUT=/tmp/out MAX_STEPS=2 bash scripts/gpu_campaign.sh train 1
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
state="${STATE:-data/campaign/state.pt}"
case "${1:-}" in
prepare)
    py="${PYTHON:-$root/.venv/bin/python}"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl ase==3.29.0
    ls -l .whl
    ;;
train)
    minutes="${2:-8}"
    out="${OUT:?set OUT (the device tool sets it)}"
    py="${PYTHON:-python3}"
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
    mkdir -p "$out"
    cp "$state" "$out/state.pt"
    extra=()
    [ -n "${MAX_STEPS:-}" ] && extra+=(--max-steps "$MAX_STEPS")
    "$py" -m aiida_hip.dataset.campaign --minutes "$minutes" --phase train --no-promote --save-minutes 1 \
        --device "${DEVICE:-cuda}" --state "$out/state.pt" --root "${SHARDS:-data/campaign/shards}" \
        --work /tmp/gpu_campaign "${extra[@]}" 2>&1 \
        | tee "$out/campaign.log"
    ;;
adopt)
    dir="${2:?give the folder the device call returned}"
    "$root/.venv/bin/python" - "$dir/state.pt" "$state" <<'PY'
import shutil, sys
from aiida_hip.hip.campaign import CampaignState
new, old = CampaignState.load(sys.argv[1]), CampaignState.load(sys.argv[2])
if new.config_hash != old.config_hash or new.step <= old.step:
    sys.exit(f"not adopted: config {new.config_hash[:12]} vs {old.config_hash[:12]}, step {new.step} vs {old.step}")
shutil.copyfile(sys.argv[1], sys.argv[2])
print(f"adopted: {sys.argv[2]} now at step {new.step} (was {old.step})")
PY
    [ -f "$dir/campaign.log" ] && cat "$dir/campaign.log" >> data/campaign/campaign.log
    ;;
*)
    echo "usage: $0 prepare | train [MINUTES] | adopt DIR" >&2
    exit 2
    ;;
esac
