"""Environment settings, the one device validator, and what a machine without a GPU or MPI says."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from simai.kernels import DEVICE_ENV, check_device, get_kernel, parse_device, xp


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_bad_cache_size_setting_keeps_import_working_and_names_the_variable():
    code = (
        "import simai.kernels as k\n"
        "try:\n"
        "    k.get_kernel('AXPY')()\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    proc = _run(code, SIMAI_KERNELS_CACHE_SIZE="abc")
    assert proc.returncode == 0, proc.stderr
    assert "SIMAI_KERNELS_CACHE_SIZE='abc'" in proc.stdout
    assert "integer" in proc.stdout


def test_valid_cache_size_setting_is_honoured():
    code = (
        "import simai.kernels as k\n"
        "from simai.kernels._base import _CACHE\n"
        "for n in (8, 16, 24): k.get_kernel('AXPY')(data_size=(n,))\n"
        "print(_CACHE.maxsize, len(_CACHE._data))\n"
    )
    proc = _run(code, SIMAI_KERNELS_CACHE_SIZE="2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "2"]


@pytest.mark.parametrize(
    "device,expected",
    [("CPU", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("xpu:0", "xpu:0"), ("cpu:0", "cpu")],
)
def test_check_device_canonical_forms(device, expected, monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert check_device(device) == expected


@pytest.mark.parametrize(
    "device,match",
    [("cdua", "did you mean 'cuda'"), ("cuda:x", "integer"), ("cpu:1", "takes no index")],
)
def test_check_device_rejects_with_a_hint(device, match, monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    with pytest.raises(ValueError, match=match):
        check_device(device)


def test_run_wide_device_override(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert check_device("xpu") == "cpu"
    assert parse_device("cuda:3") == ("cpu", 0)
    # A kernel asked for an Aurora GPU runs on the host of this machine.
    t = get_kernel("AXPY")(device="xpu", data_size=(16,))
    assert t.host_dt > 0 and t.device_dt == t.host_dt
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    assert check_device("xpu:1") == "cuda:1"  # the kind changes, the index stays
    monkeypatch.setenv(DEVICE_ENV, "cuda:2")
    assert check_device("xpu:1") == "cuda:2"
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match=DEVICE_ENV):
        check_device("cpu")


def _fake_cupy(count: int | Exception) -> types.ModuleType:
    """A stand-in for cupy with only what the device probe touches (no GPU here)."""

    def get_device_count() -> int:
        if isinstance(count, Exception):
            raise count
        return count

    cp = types.ModuleType("cupy")
    cp.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count),
        Device=lambda index: ("device", index),
    )
    return cp


@pytest.fixture
def fake_cupy(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)

    def install(count):
        monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
        xp._backend.cache_clear()

    yield install
    xp._backend.cache_clear()


def test_fake_cupy_without_driver_says_no_cuda_device_or_driver(fake_cupy):
    fake_cupy(RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient"))
    with pytest.raises(RuntimeError, match="no CUDA device/driver was found"):
        xp.get_backend("cuda")


def test_fake_cupy_with_zero_devices_says_no_cuda_device(fake_cupy):
    fake_cupy(0)
    with pytest.raises(RuntimeError, match="no CUDA device/driver was found"):
        xp.get_backend("cuda:0")


def test_fake_cupy_cuda1_on_a_one_gpu_machine_is_checked(fake_cupy):
    fake_cupy(1)
    assert xp.get_backend("cuda:0").device == "cuda:0"
    with pytest.raises(ValueError, match=r"'cuda:1' does not exist: 1 CUDA device"):
        xp.get_backend("cuda:1")


def test_mpi4py_without_an_mpi_library_names_both_extras():
    # mpi4py honours MPI4PY_LIBMPI: pointing it nowhere is exactly a pip mpi4py with no libmpi.
    code = (
        "from simai.kernels import get_kernel\n"
        "try:\n"
        "    get_kernel('AllReduce')()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    proc = _run(code, MPI4PY_LIBMPI="/nonexistent/libmpi.so.12")
    assert proc.returncode == 0, proc.stderr
    assert "no MPI library was found" in proc.stdout
    assert "simai-kernels[mpich]" in proc.stdout and "simai-kernels[mpi]" in proc.stdout


def test_upstream_io_call_form_num_bytes_then_directory(tmp_path):
    write, read = get_kernel("WriteNonMPI"), get_kernel("ReadNonMPI")
    with pytest.warns(DeprecationWarning, match="path="):
        write(4096, str(tmp_path), "step1")
    assert (tmp_path / "data_0_step1.h5").stat().st_size >= 4096
    with pytest.warns(DeprecationWarning, match="path="):
        read(4096, data_root_dir=str(tmp_path), filename_suffix="step1")
    assert read.buffers(num_bytes=4096, path=str(tmp_path), filename_suffix="step1")[
        "host"
    ].shape == (1024,)
