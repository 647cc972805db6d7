#!/usr/bin/env bash
# A production profile: PostgreSQL storage + RabbitMQ broker, localhost and local-SLURM computers, the
# worker code on both, and the daemon with several workers (docs/production.md).
#   bash scripts/production.sh [PROFILE [WORKERS]]      (defaults: hip-prod 2)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-hip-prod}"
workers="${2:-2}"
bash "$root/scripts/setup.sh"
source "$root/scripts/env.sh"
bash "$root/scripts/services.sh"
aiida-hip setup --profile "$profile" --production --slurm slurm-local
verdi -p "$profile" daemon start "$workers" || verdi -p "$profile" daemon status
echo "profile $profile ready: verdi -p $profile run examples/ts_batch.py, aiida-hip submit ... -p $profile --daemon"
echo "(for jobs on hip-worker@slurm-local start SLURM first: bash scripts/slurm-local.sh start)"
