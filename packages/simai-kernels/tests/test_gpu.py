"""cuda paths (cupy, NCCL). Marked ``gpu``: skipped with the reason where no GPU is present."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simai.kernels import get_kernel, list_kernels

pytestmark = pytest.mark.gpu

LOCAL_GPU = [
    "MatMulSimple2D",
    "MatMulGeneral",
    "FFT",
    "AXPY",
    "InplaceCompute",
    "GenerateRandomNumber",
    "ScatterAdd",
    "CopyHostToDevice",
    "CopyDeviceToHost",
    "CopyDeviceToDevice",
    "WriteNonMPI",
    "ReadNonMPI",
    "Sleep",
]


@pytest.mark.parametrize("name", LOCAL_GPU)
def test_cuda_kernel_times_the_device(name, tmp_path, monkeypatch):
    import cupy

    monkeypatch.setenv("SIMAI_KERNELS_IO_DIR", str(tmp_path))
    host_dt, device_dt = get_kernel(name)(device="cuda", data_size=(256, 256))
    assert host_dt > 0 and device_dt > 0
    # device time is measured between events on the stream: it cannot exceed host time
    assert device_dt <= host_dt * 1.05 + 1e-4
    assert cupy.cuda.get_current_stream().done


def test_cuda_results_match_numpy():
    import cupy

    b = get_kernel("MatMulSimple2D").buffers(device="cuda", data_size=(64, 32), dtype="float64")
    get_kernel("MatMulSimple2D")(device="cuda", data_size=(64, 32), dtype="float64")
    a, bb, c = (cupy.asnumpy(b[k]) for k in ("a", "b", "c"))
    np.testing.assert_allclose(c, a @ bb)
    k = get_kernel("ScatterAdd")
    s = k.buffers(device="cuda", data_size=(8, 8))
    expected = cupy.asnumpy(s["y"]).copy()
    np.add.at(expected.reshape(-1), cupy.asnumpy(s["idx"]), cupy.asnumpy(s["x"]))
    k(device="cuda", data_size=(8, 8))
    np.testing.assert_allclose(cupy.asnumpy(s["y"]), expected, rtol=1e-5)
    h = get_kernel("CopyDeviceToHost")
    h(device="cuda", data_size=100)
    hb = h.buffers(device="cuda", data_size=100)
    np.testing.assert_array_equal(hb["host"], cupy.asnumpy(hb["device"]))


@pytest.mark.mpi
def test_nccl_comm_kernels_single_rank(tmp_path):
    """NCCL communicator creation and every comm kernel on one GPU (a 1-rank world)."""
    code = (
        "import json, numpy as np, cupy\n"
        "from simai.kernels import get_kernel, list_kernels\n"
        "out = {}\n"
        "for n in list_kernels()['comm']:\n"
        "    k = get_kernel(n); k(device='cuda'); t = k(device='cuda'); out[n] = list(t)\n"
        "b = get_kernel('AllReduce').buffers(device='cuda')\n"
        "out['allreduce_ok'] = bool((cupy.asnumpy(b['recv']) == cupy.asnumpy(b['send'])).all())\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["allreduce_ok"]
    assert set(list_kernels()["comm"]) <= set(out)
