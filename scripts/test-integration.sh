#!/usr/bin/env bash
# The integration suite: PostgreSQL + RabbitMQ profile with the daemon, a local one-node SLURM (installed
# with apt-get if missing; needs root), throttled submission. Set-up runs first and is idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
exec .venv/bin/python -m pytest -m integration tests/integration "$@"
