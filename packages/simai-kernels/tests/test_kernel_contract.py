"""The Kernel contract, run against every registered built-in kernel on cpu."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simai.kernels import Kernel, KernelTiming, get_kernel, list_kernels

SPEC = {
    "compute": [
        "MatMulSimple2D",
        "MatMulGeneral",
        "FFT",
        "AXPY",
        "InplaceCompute",
        "GenerateRandomNumber",
        "ScatterAdd",
    ],
    "io": ["WriteSingleRank", "WriteNonMPI", "WriteWithMPI", "ReadNonMPI", "ReadWithMPI"],
    "comm": [
        "AllReduce",
        "AllGather",
        "Broadcast",
        "Reduce",
        "AllToAll",
        "Barrier",
        "HaloExchange",
    ],
    "copy": ["CopyHostToDevice", "CopyDeviceToHost", "CopyDeviceToDevice"],
    "misc": ["Sleep"],
}
# Kernels that initialise MPI run in a subprocess (test_defaults_of_mpi_kernels) so the
# pytest process never initialises MPI.
MPI_KERNELS = {*SPEC["comm"], "WriteWithMPI", "ReadWithMPI"}
LOCAL = [n for names in SPEC.values() for n in names if n not in MPI_KERNELS]


@pytest.fixture(autouse=True)
def io_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMAI_KERNELS_IO_DIR", str(tmp_path))


def test_list_kernels_matches_spec():
    listed = list_kernels()
    for family, names in SPEC.items():
        assert sorted(names, key=str.lower) == [n for n in listed[family] if n in names]
        assert set(names) <= set(listed[family])
    assert all(names == sorted(names, key=str.lower) for names in listed.values())


@pytest.mark.parametrize("family,name", [(f, n) for f, ns in SPEC.items() for n in ns])
def test_kernel_identity(family, name):
    k = get_kernel(name)
    assert isinstance(k, Kernel)
    assert (k.name, k.family) == (name, family)
    assert get_kernel(name.upper()).name == name
    assert get_kernel(f"  {name.lower()} ").name == name


@pytest.mark.parametrize("name", LOCAL)
def test_defaults_return_timing(name):
    t = get_kernel(name)()
    assert isinstance(t, KernelTiming)
    host_dt, device_dt = t
    assert 0 <= host_dt < 60 and device_dt == host_dt  # cpu: device time is host time
    assert t._fields == ("host_dt", "device_dt")


@pytest.mark.mpi
def test_defaults_of_mpi_kernels(tmp_path):
    """Comm and collective I/O kernels work as a plain single process (MPI singleton)."""
    code = (
        "import json\n"
        "from simai.kernels import get_kernel\n"
        f"names = {sorted(MPI_KERNELS)!r}\n"
        "out = {n: list(get_kernel(n)()) for n in names}\n"
        "print(json.dumps(out))\n"
    )
    env = {"SIMAI_KERNELS_IO_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out) == MPI_KERNELS
    assert all(len(v) == 2 and v[0] == v[1] > 0 for v in out.values()), out
    assert (tmp_path / "data.h5").exists()  # ReadWithMPI created what it read


def test_unknown_kernel_suggests_close_matches():
    with pytest.raises(ValueError, match="MatMulSimple2D") as err:
        get_kernel("matmulsimple")
    assert "unknown kernel 'matmulsimple'" in str(err.value)
    with pytest.raises(ValueError, match="AllReduce"):
        get_kernel("AllReduse")
    with pytest.raises(TypeError):
        get_kernel(3)


def test_unknown_option_suggests_close_match():
    with pytest.raises(TypeError, match=r"'alpah' \(did you mean 'alpha'\?\)"):
        get_kernel("AXPY")(alpah=2.0)
    with pytest.raises(TypeError, match="accepts no options"):
        get_kernel("MatMulSimple2D")(duration=1)


@pytest.mark.parametrize("bad", [(0, 3), (-1,), (2.5, 2), "big", (), [3, None]])
def test_bad_data_size(bad):
    with pytest.raises(ValueError, match="data_size"):
        get_kernel("AXPY")(data_size=bad)


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match="not a numpy dtype"):
        get_kernel("AXPY")(dtype="floaty")
    with pytest.raises(ValueError, match="not supported"):
        get_kernel("AXPY")(dtype="int32")
    with pytest.raises(ValueError, match="did you mean 'cuda'"):
        get_kernel("AXPY")(device="cdua")
    with pytest.raises(ValueError, match="did you mean 'cpu'"):
        get_kernel("AXPY")(device="cpuu")
    with pytest.raises(ValueError, match="index"):
        get_kernel("AXPY")(device="cpu:1")


def test_timing_is_a_named_tuple():
    t = KernelTiming(1.5, 0.5)
    host_dt, device_dt = t
    assert (host_dt, device_dt) == (t.host_dt, t.device_dt) == (1.5, 0.5)
    assert json.loads(json.dumps(t)) == [1.5, 0.5]


def test_inputs_are_finite(tmp_path):
    for name in (
        "MatMulSimple2D",
        "AXPY",
        "FFT",
        "InplaceCompute",
        "ScatterAdd",
        "CopyHostToDevice",
    ):
        for arr in get_kernel(name).buffers(data_size=(16, 16), dtype="float64").values():
            if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc":
                assert np.isfinite(arr).all(), name
