#!/usr/bin/env bash
# Install everything the test suite needs into ./.venv and run it.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is needed for the Redis tests: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi
# The report's browser tests (marker `browser`) open it in headless chromium; they skip
# with a reason where it is absent and we cannot install it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: the browser tests will be skipped" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q -c .ci/constraints.txt)
"${PIP[@]}" -U pip
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" \
  -e packages/simai-kernels"[mpich,hdf5]" \
  -e packages/simai-datastore"[redis,dragon]" \
  -e packages/simai-profiling"[plot,report]" \
  -e packages/simai-components"[ai]" \
  -e packages/simai-orchestrator"[dask,ray,parsl,dragon,mpi]" \
  -e packages/simai-bench"[all]" \
  pytest pytest-timeout hypothesis proxystore

# mpiexec, dragon and simai come from the venv's bin.
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
