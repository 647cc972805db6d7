# Sourced by the entry scripts: keep every cache and config inside the repository, never in $HOME.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
export AIIDA_PATH="${AIIDA_PATH:-$root/.aiida}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$root/.cache/matplotlib}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$root/.cache/torchinductor}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$root/.cache}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
mkdir -p "$MPLCONFIGDIR" "$TORCHINDUCTOR_CACHE_DIR"
