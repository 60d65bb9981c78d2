"""Item 7: SimAI-Bench's kernel helpers, flags and call forms."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.compat


def test_lookup_helpers_by_name_and_family():
    from simai.bench.compat import kernel

    assert kernel.get_kernel_from_string("matmulsimple2d").name == "MatMulSimple2D"
    assert kernel.get_io_kernel_from_string("WriteNonMPI").family == "io"
    assert kernel.get_comm_kernel_from_string("AllReduce").family == "comm"
    with pytest.raises(ValueError, match="is a compute kernel, not a io kernel"):
        kernel.get_io_kernel_from_string("AXPY")
    names = kernel.get_all_compute_kernel_names()
    assert {"MatMulSimple2D", "FFT", "AXPY"} <= set(names)
    assert [k.name for k in kernel.get_all_compute_kernels()] == names
    assert set(kernel.get_all_io_kernel_names()) >= {"WriteNonMPI", "ReadWithMPI"}
    assert {"AllReduce", "AllGather"} <= set(kernel.get_all_comm_kernel_names())
    assert {"CopyHostToDevice"} <= {k.name for k in kernel.get_all_copy_kernels()}


def test_availability_flags_match_what_is_installed():
    from simai.bench.compat import kernel

    assert kernel.CUPY_AVAILABLE is (importlib.util.find_spec("cupy") is not None)
    assert kernel.DPNP_AVAILABLE is (importlib.util.find_spec("dpnp") is not None)
    assert kernel.MPI4PY_AVAILABLE is (importlib.util.find_spec("mpi4py") is not None)
    names: dict = {}
    exec("from simai.bench.compat.kernel import *", names)  # upstream tests' own import
    assert names["DPNP_AVAILABLE"] is kernel.DPNP_AVAILABLE and "MatMulSimple2D" in names


def test_upstream_call_forms_of_compute_and_io_kernels(tmp_path):
    from simai.bench.compat.kernel import MatMulSimple2D, WriteNonMPI, readNonMPI

    # upstream's own init_sim.json gives MatMulSimple2D a 3-D data_size
    host_dt, device_dt = MatMulSimple2D()("cpu", (4, 8, 8))
    assert host_dt > 0 and device_dt == host_dt
    with pytest.warns(DeprecationWarning):
        WriteNonMPI()(4096, str(tmp_path))
    assert (tmp_path / "data_0.h5").stat().st_size > 4096
    assert readNonMPI(4096, str(tmp_path)).host_dt > 0


def test_return_dim_as_a_list_is_the_returned_array_shape():
    from simai.bench.compat import OchestratorConfig, SystemConfig, Workflow

    w = Workflow(
        orchestrator_config=OchestratorConfig(name="thread-pool"),
        system_config=SystemConfig(name="local", ncpus=2),
    )
    w.register_component("ok", lambda: np.zeros((2, 3)), type="local", return_dim=[2, 3])
    w.register_component("bad", lambda: np.zeros(5), type="local", return_dim=[2, 3])
    w.register_component("any", lambda: 7, type="local", return_dim=[])
    result = w.launch(timeout=60)
    assert result["ok"].status == "succeeded" and result["any"].status == "succeeded"
    assert result["bad"].status == "failed" and "shape (5,)" in str(result["bad"].error)


MPI_SCRIPT = """
import json, sys
import mpi4py
mpi4py.rc.initialize = False
from mpi4py import MPI
from simai.bench.compat.kernel import MPIallGather, MPIallReduce, init_mpi
init_mpi()
rank = MPI.COMM_WORLD.Get_rank()
total = MPIallReduce("cpu", (3,))
gathered = MPIallGather("cpu", (2,))
row = {"rank": rank, "sum_shape": list(total.shape), "gather_shape": list(gathered.shape)}
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:  # ranks' stdout lines can interleave
    json.dump(row, f)
"""


@pytest.mark.mpi
def test_mpi_allreduce_and_allgather_legacy_functions(tmp_path, have_mpiexec):
    import subprocess

    script = tmp_path / "legacy_mpi.py"
    script.write_text(MPI_SCRIPT)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in rows] == [0, 1]
    assert all(r["sum_shape"] == [3] and r["gather_shape"] == [2, 2] for r in rows)
