#!/usr/bin/env bash
# The main job (until the AiiDA layer lands): the model demo, then a HIP-driven TS search on a
# bundled reaction (CH3NC -> CH3CN) written to runs/main/. Set-up runs first and is idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
.venv/bin/aiida-hip demo
reaction="aiida_hip/reactions/ch3nc_ch3cn"
# Exit status 1 = the search ran and reports the stage that failed (result.json); anything else is an error.
status=0
.venv/bin/aiida-hip ts-search "$reaction/reactant.xyz" "$reaction/product.xyz" --out runs/main/ch3nc_ch3cn || status=$?
[ "$status" -le 1 ] || exit "$status"
