"""Optional dependencies: never imported by ``import simai.kernels``; missing -> named extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simai.kernels import get_backend, get_kernel

OPTIONAL = ("cupy", "dpnp", "dpctl", "mpi4py", "h5py", "torch")


def test_import_pulls_no_optional_dependency():
    code = (
        "import sys, json\n"
        "import simai.kernels\n"
        "from simai.kernels import get_kernel, list_kernels\n"
        "list_kernels(); get_kernel('AllReduce'); get_kernel('WriteWithMPI')\n"
        f"print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.fixture
def absent(monkeypatch):
    """Make modules unimportable, as if their extra were not installed."""

    from simai.kernels import xp

    def hide(*names):
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)

    # Backends are cached per process; on a GPU machine an earlier test built the cuda one.
    xp._backend.cache_clear()
    yield hide
    xp._backend.cache_clear()


def test_missing_cupy_names_the_cuda_extra(absent):
    absent("cupy")
    with pytest.raises(ImportError, match=r"simai-kernels\[cuda\]"):
        get_kernel("MatMulSimple2D")(device="cuda")
    with pytest.raises(ImportError, match=r"simai-kernels\[cuda\]"):
        get_backend("cuda:1")


def test_missing_dpnp_names_the_xpu_extra(absent):
    absent("dpnp", "dpctl")
    with pytest.raises(ImportError, match=r"simai-kernels\[xpu\]"):
        get_kernel("AXPY")(device="xpu")


def test_missing_h5py_names_the_hdf5_extra(absent, tmp_path):
    absent("h5py")
    for name in ("WriteNonMPI", "ReadNonMPI", "WriteSingleRank"):
        with pytest.raises(ImportError, match=r"h5py is required .*simai-kernels\[hdf5\]"):
            get_kernel(name)(path=tmp_path)


def test_missing_mpi4py_names_the_mpi_extra(absent):
    absent("mpi4py", "mpi4py.MPI")
    for name in ("AllReduce", "Barrier", "HaloExchange", "WriteWithMPI", "ReadWithMPI"):
        with pytest.raises(ImportError, match=r"mpi4py is required .*simai-kernels\[mpi\]"):
            get_kernel(name)()
