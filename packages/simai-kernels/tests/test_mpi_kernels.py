"""Comm and collective I/O kernels under a real ``mpiexec -n 2``.

One launch runs every check (tests/mpi_scripts/check_mpi_kernels.py) so the suite stays
fast; each check is then reported as its own test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).parent / "mpi_scripts" / "check_mpi_kernels.py"
CHECKS = [
    "size",
    "allreduce_sum",
    "allreduce_max_float64",
    "allgather",
    "broadcast",
    "reduce_sum_root0",
    "alltoall",
    "barrier",
    "halo_exchange_2d",
    "halo_exchange_3d_nonperiodic",
    "write_read_with_mpi",
    "read_with_mpi_creates_missing",
    "per_rank_files",
    "write_single_rank",
    "shape_mismatch_raises_on_all_ranks",
]


def mpiexec() -> str:
    exe = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found: install the 'mpich' extra (mpi4py + the MPICH library)")
    return exe


def run_two_ranks(tmp: Path, *args: str, timeout: float = 120) -> dict[int, dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, str(SCRIPT), str(tmp), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    results = {
        rank: json.loads(path.read_text())
        for rank in (0, 1)
        if (path := tmp / f"checks_{rank}.json").exists()
    }
    assert proc.returncode == 0 and len(results) == 2, (
        f"mpiexec exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return results


@pytest.fixture(scope="module")
def mpi_results(tmp_path_factory) -> dict[int, dict[str, str]]:
    return run_two_ranks(tmp_path_factory.mktemp("mpi_io"), "mpiio")


@pytest.mark.parametrize("check", CHECKS)
def test_two_ranks(mpi_results, check):
    for rank in (0, 1):
        assert mpi_results[rank].get(check) == "ok", (
            f"rank {rank}, {check}:\n{mpi_results[rank].get(check)}"
        )


def test_script_runs_every_listed_check(mpi_results):
    assert set(mpi_results[0]) == set(CHECKS)


@pytest.mark.hdf5_parallel
def test_collective_io_through_parallel_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    if not h5py.get_config().mpi:
        pytest.skip(
            f"h5py {h5py.__version__} was built without MPI (no 'mpio' driver); "
            "build it with scripts/build-parallel-h5py.sh and run pytest from that venv"
        )
    results = run_two_ranks(tmp_path, "mpio")
    for rank in (0, 1):
        bad = {k: v for k, v in results[rank].items() if v != "ok"}
        assert not bad, f"rank {rank}: {bad}"
