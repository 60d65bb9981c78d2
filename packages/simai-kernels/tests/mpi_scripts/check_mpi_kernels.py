"""Run under ``mpiexec -n 2``: exercise the comm and collective I/O kernels and check results.

Each rank writes ``IO_DIR/checks_<rank>.json`` = ``{name: "ok" | error text}`` (files,
not stdout, so the ranks' output cannot interleave); pytest asserts every check. Usage: script.py IO_DIR [METHOD]
"""

from __future__ import annotations

import json
import sys
import traceback

import numpy as np
from mpi4py import MPI

from simai.kernels import KernelTiming, get_kernel

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
io_dir = sys.argv[1]
method = sys.argv[2] if len(sys.argv) > 2 else "mpiio"
checks: dict[str, str] = {}


def check(name):
    def wrap(fn):
        try:
            fn()
            checks[name] = "ok"
        except Exception:
            checks[name] = traceback.format_exc(limit=3)
        return fn

    return wrap


def timing_ok(t):
    # on cpu the host is the device: one measured, non-zero interval
    assert isinstance(t, KernelTiming) and t.host_dt == t.device_dt > 0, t


def gather(a):
    return comm.allgather(np.array(a, copy=True))


@check("size")
def _():
    assert size == 2, f"expected 2 ranks, got {size}"


@check("allreduce_sum")
def _():
    k = get_kernel("AllReduce")
    timing_ok(k(data_size=(16, 8)))
    b = k.buffers(data_size=(16, 8))
    sends = gather(b["send"])
    assert not np.array_equal(sends[0], sends[1]), "ranks must contribute different data"
    np.testing.assert_allclose(b["recv"], sends[0] + sends[1], rtol=1e-6)


@check("allreduce_max_float64")
def _():
    k = get_kernel("allreduce")
    k(data_size=100, dtype="float64", op="max")
    b = k.buffers(data_size=100, dtype="float64", op="max")
    sends = gather(b["send"])
    np.testing.assert_array_equal(b["recv"], np.maximum(sends[0], sends[1]))


@check("allgather")
def _():
    k = get_kernel("AllGather")
    timing_ok(k(data_size=(4, 5)))
    b = k.buffers(data_size=(4, 5))
    sends = gather(b["send"])
    assert b["recv"].shape == (2, 4, 5)
    for r in range(size):
        np.testing.assert_array_equal(b["recv"][r], sends[r])


@check("broadcast")
def _():
    k = get_kernel("Broadcast")
    b = k.buffers(data_size=(32,), root=1)
    before = gather(b["buf"])
    assert not np.array_equal(before[0], before[1])
    timing_ok(k(data_size=(32,), root=1))
    np.testing.assert_array_equal(b["buf"], before[1])


@check("reduce_sum_root0")
def _():
    k = get_kernel("Reduce")
    timing_ok(k(data_size=(8, 8), dtype="complex64"))
    b = k.buffers(data_size=(8, 8), dtype="complex64")
    sends = gather(b["send"])
    if rank == 0:
        np.testing.assert_allclose(b["recv"], sends[0] + sends[1], rtol=1e-6)


@check("alltoall")
def _():
    k = get_kernel("AllToAll")
    timing_ok(k(data_size=(3, 3), dtype="int32"))
    b = k.buffers(data_size=(3, 3), dtype="int32")
    sends = gather(b["send"])
    for src in range(size):
        np.testing.assert_array_equal(b["recv"][src], sends[src][rank])


@check("barrier")
def _():
    timing_ok(get_kernel("Barrier")())


@check("halo_exchange_2d")
def _():
    k = get_kernel("HaloExchange")
    shape, h = (6, 5), 2
    timing_ok(k(data_size=shape, halo_width=h))
    b = k.buffers(data_size=shape, halo_width=h)
    u = b["u"]
    interior = u[h:-h, h:-h].copy()
    dims, coords = b["dims"], b["coords"]
    everyone = comm.allgather((coords, interior))
    glob = np.zeros((dims[0] * shape[0], dims[1] * shape[1]), u.dtype)
    for (c0, c1), block in everyone:
        glob[c0 * shape[0] : (c0 + 1) * shape[0], c1 * shape[1] : (c1 + 1) * shape[1]] = block
    padded = np.pad(glob, h, mode="wrap")  # periodic domain
    c0, c1 = coords
    expected = padded[
        c0 * shape[0] : c0 * shape[0] + shape[0] + 2 * h,
        c1 * shape[1] : c1 * shape[1] + shape[1] + 2 * h,
    ]
    np.testing.assert_array_equal(u, expected)


@check("halo_exchange_3d_nonperiodic")
def _():
    k = get_kernel("HaloExchange")
    shape = (4, 3, 2)
    k(data_size=shape, periodic=False)
    b = k.buffers(data_size=shape, periodic=False)
    u, dims, coords = b["u"], b["dims"], b["coords"]
    everyone = comm.allgather((coords, u[1:-1, 1:-1, 1:-1].copy()))
    glob = np.zeros(tuple(d * n for d, n in zip(dims, shape, strict=True)), u.dtype)
    for c, block in everyone:
        glob[tuple(slice(ci * n, (ci + 1) * n) for ci, n in zip(c, shape, strict=True))] = block
    padded = np.pad(glob, 1)  # zeros outside: untouched ghosts stay zero
    expected = padded[
        tuple(slice(ci * n, ci * n + n + 2) for ci, n in zip(coords, shape, strict=True))
    ]
    np.testing.assert_array_equal(u, expected)


@check("write_read_with_mpi")
def _():
    w, r = get_kernel("WriteWithMPI"), get_kernel("ReadWithMPI")
    opts = {"path": io_dir, "method": method, "filename_suffix": "coll"}
    timing_ok(w(data_size=(64, 3), dtype="float64", **opts))
    timing_ok(r(data_size=(64, 3), dtype="float64", **opts))
    written = w.buffers(data_size=(64, 3), dtype="float64", **opts)["host"]
    read = r.buffers(data_size=(64, 3), dtype="float64", **opts)["host"]
    np.testing.assert_array_equal(read, written)
    rows = gather(written)
    comm.Barrier()
    if rank == 0:  # the shared file is an ordinary HDF5 file, row r from rank r
        import h5py

        with h5py.File(f"{io_dir}/data_coll.h5", "r") as f:
            assert f["data"].shape == (2, 64, 3)
            for src in range(size):
                np.testing.assert_array_equal(f["data"][src], rows[src])


@check("read_with_mpi_creates_missing")
def _():
    r = get_kernel("ReadWithMPI")
    opts = {"path": io_dir, "method": method, "filename_suffix": "fresh"}
    timing_ok(r(data_size=10, **opts))
    read = r.buffers(data_size=10, **opts)["host"]
    written = get_kernel("WriteWithMPI").buffers(data_size=10, **opts)["host"]
    np.testing.assert_array_equal(read, written)


@check("per_rank_files")
def _():
    w, r = get_kernel("WriteNonMPI"), get_kernel("ReadNonMPI")
    w(data_size=(10,), path=io_dir, comm=comm)
    r(data_size=(10,), path=io_dir, comm=comm)
    np.testing.assert_array_equal(
        r.buffers(data_size=(10,), path=io_dir, comm=comm)["host"],
        w.buffers(data_size=(10,), path=io_dir, comm=comm)["host"],
    )
    import os

    assert os.path.exists(f"{io_dir}/data_{rank}.h5")


@check("write_single_rank")
def _():
    get_kernel("WriteSingleRank")(data_size=(7,), path=io_dir, filename_suffix="single", comm=comm)
    comm.Barrier()
    import os

    assert os.path.exists(f"{io_dir}/data_single.h5")


@check("shape_mismatch_raises_on_all_ranks")
def _():
    r = get_kernel("ReadWithMPI")
    try:
        r(
            data_size=(5, 5),
            path=io_dir,
            method=method,
            filename_suffix="coll",
            create_missing=False,
        )
    except (ValueError, RuntimeError) as exc:
        assert "shape" in str(exc), exc
    else:
        raise AssertionError("reading with the wrong data_size did not raise")


comm.Barrier()
with open(f"{io_dir}/checks_{rank}.json", "w") as f:
    json.dump(checks, f)
