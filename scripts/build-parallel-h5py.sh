#!/usr/bin/env bash
# Build h5py with the MPI-IO ('mpio') driver in its own virtual environment, so that
# simai.kernels' WriteWithMPI/ReadWithMPI use collective parallel HDF5 (method="mpio").
#
# Opt-in and not part of default CI: it installs Debian packages and compiles mpi4py
# and h5py from source (a few minutes). Both link against Debian's MPICH and
# HDF5-for-MPICH; no pip 'mpich' wheel goes into this venv, because mpi4py, h5py and
# libhdf5 must all share one MPI library.
#
# Usage (Debian/Ubuntu, as root or with sudo available):
#   scripts/build-parallel-h5py.sh [VENV_DIR]   # default: ~/.cache/simai/venv-h5py-mpi
#   VENV_DIR/bin/python -m pytest packages/simai-kernels -m "mpi or hdf5_parallel"
# Environment: PYTHON (interpreter for the venv, default python3), SKIP_APT=1 (packages
# already installed), H5PY_VERSION / MPI4PY_VERSION (pins, default: latest).
set -euo pipefail

cd "$(dirname "$0")/.."
# Outside the repository by default, so the build never lands in a commit.
VENV_DIR="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/simai/venv-h5py-mpi}"
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ "${SKIP_APT:-0}" != "1" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # libhdf5-mpich-dev pulls in libmpich-dev and the mpich launcher (mpiexec.mpich).
  $SUDO apt-get install -y -qq --no-install-recommends \
    libhdf5-mpich-dev mpich pkg-config build-essential >/dev/null
fi

command -v mpicc.mpich >/dev/null || { echo "mpicc.mpich not found: install mpich" >&2; exit 1; }
pkg-config --exists hdf5-mpich || { echo "pkg-config cannot find hdf5-mpich: install libhdf5-mpich-dev" >&2; exit 1; }

"$PYTHON" -m venv "$VENV_DIR"
PY="$VENV_DIR/bin/python"
"$PY" -m pip install -q --upgrade pip
# Build requirements of h5py, installed up front because we build without isolation.
"$PY" -m pip install -q --upgrade numpy "Cython>=3" pkgconfig "setuptools>=77" wheel

export CC=mpicc.mpich MPICC=mpicc.mpich
"$PY" -m pip install -q --no-cache-dir --no-binary=mpi4py "mpi4py${MPI4PY_VERSION:+==$MPI4PY_VERSION}"
HDF5_MPI=ON HDF5_PKGCONFIG_NAME=hdf5-mpich \
  "$PY" -m pip install -q --no-cache-dir --no-binary=h5py --no-build-isolation \
  "h5py${H5PY_VERSION:+==$H5PY_VERSION}"

"$PY" -m pip install -q --no-deps -e packages/simai-kernels
"$PY" -m pip install -q pytest pytest-timeout

"$PY" - <<'EOF'
import h5py, mpi4py
assert h5py.get_config().mpi, "h5py was built without MPI"
print(f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}) with mpio; mpi4py {mpi4py.__version__}")
EOF
# Launch with the MPICH these were built against: the tests look for mpiexec beside
# the interpreter first, so put Debian's there (never a pip wheel's). A wrapper, not a
# symlink: hydra finds its hydra_pmi_proxy next to the path it was started as.
rm -f "$VENV_DIR/bin/mpiexec"
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v mpiexec.mpich)" >"$VENV_DIR/bin/mpiexec"
chmod +x "$VENV_DIR/bin/mpiexec"
echo "done: $PY -m pytest packages/simai-kernels -m 'mpi or hdf5_parallel'"
