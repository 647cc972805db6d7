#!/usr/bin/env bash
# The main job: TS searches for the five bundled reactions (HIP explores, GFN2-xTB confirms), as one AiiDA batch
# (`verdi run examples/ts_batch.py`) on the embedded profile `aiida-hip` (SQLite storage, no
# external services), then the same reactions listed from the database and an HTML report of them
# (reports/examples.html). Set-up runs first; every
# step is idempotent (an existing profile, computer and code are reused).
# Extra arguments go to the example, e.g. `bash scripts/main.sh --calculator xtb --protocol fast`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
.venv/bin/aiida-hip setup --profile aiida-hip
.venv/bin/verdi -p aiida-hip run examples/ts_batch.py -- "$@"
.venv/bin/aiida-hip reactions list -p aiida-hip --group aiida-hip/examples
.venv/bin/aiida-hip report -p aiida-hip aiida-hip/examples --out reports/examples.html
