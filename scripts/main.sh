#!/usr/bin/env bash
# The main job. Until the AiiDA layer lands this is the model demo: predict a Hessian and print
# the vibrational analysis. Set-up runs first and is idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
exec .venv/bin/aiida-hip demo "$@"
