#!/usr/bin/env bash
# The fast test suite (no slow, no integration tests). Set-up runs first and is idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/chromium.sh" || echo "could not install chromium: the report browser test will say so" >&2
source "$root/scripts/env.sh"
cd "$root"
exec .venv/bin/python -m pytest -m "not slow and not integration" "$@"
