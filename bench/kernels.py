"""simai.kernels: each kernel call against the plain numpy (or h5py / mpi4py) expression.

For every kernel and size, "ours" is the median wall time of ``kernel(device="cpu", ...)``
-- argument checks, cached-input look-up and timing included -- and "reference" is the
median wall time of the same operation written directly, on inputs of the same shape
and dtype, measured in the same run. A ratio near 1.0 means the kernel layer adds
nothing; below 1.0 means our preallocated outputs beat the allocating expression.

    python bench/kernels.py [--quick] [--json PATH]

Comm kernels run as one rank (an MPI singleton) here; run under ``mpiexec -n 2`` to time
real collectives (rank 0 reports). BLAS runs single-threaded unless OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS / MKL_NUM_THREADS say otherwise: on a shared machine a multi-threaded BLAS
varies 10x from one call to the next, which drowns the comparison.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, median_time, parser, report  # noqa: E402

from simai.kernels import get_kernel  # noqa: E402


def cases(quick: bool, tmp: Path):
    """(kernel, kwargs, reference name, reference factory) per kernel and size."""
    f32 = np.float32
    rng = np.random.default_rng(0)

    def u(*shape, dtype=f32):
        return rng.uniform(-1, 1, shape).astype(dtype)

    mat = [128, 512] if quick else [64, 256, 1024]
    vec = [(32, 32, 32), (128, 128, 64)] if quick else [(16, 16, 16), (64, 64, 64), (128, 128, 128)]
    io = [(256, 1024)] if quick else [(64, 1024), (1024, 1024), (4096, 1024)]

    for n in mat:
        a, b = u(n, n), u(n, n)
        yield "MatMulSimple2D", {"data_size": (n, n)}, "a @ b", lambda a=a, b=b: a @ b
    for n in [16, 48] if quick else [16, 32, 64]:
        a, b = u(n, n, n), u(n, n, n)
        yield (
            "MatMulGeneral",
            {"data_size": (n, n, n)},
            "np.tensordot(a, b, 2)",
            lambda a=a, b=b: np.tensordot(a, b, 2),
        )
    for shape in vec:
        x, y = u(*shape), u(*shape)
        yield "FFT", {"data_size": shape}, "np.fft.fft(x)", lambda x=x: np.fft.fft(x)
        yield "AXPY", {"data_size": shape}, "1.01 * x + y", lambda x=x, y=y: 1.01 * x + y
        yield "InplaceCompute", {"data_size": shape}, "np.exp(x)", lambda x=x: np.exp(x)
        g = np.random.default_rng(1)
        yield (
            "GenerateRandomNumber",
            {"data_size": shape},
            "rng.random(shape, float32)",
            lambda g=g, shape=shape: g.random(shape, dtype=f32),
        )
        size = int(np.prod(shape))
        yv, xv, idx = u(size), u(size), rng.integers(0, size, size)
        yield (
            "ScatterAdd",
            {"data_size": shape},
            "np.add.at(y, idx, x)",
            lambda yv=yv, idx=idx, xv=xv: np.add.at(yv, idx, xv),
        )
        yield "CopyHostToDevice", {"data_size": shape}, "x.copy()", lambda x=x: x.copy()
        yield "CopyDeviceToHost", {"data_size": shape}, "np.array(x)", lambda x=x: np.array(x)
        yield "CopyDeviceToDevice", {"data_size": shape}, "x.copy()", lambda x=x: x.copy()

    import h5py

    for shape in io:
        x = u(*shape)
        ref = tmp / "ref.h5"

        def write(x=x, ref=ref):
            with h5py.File(ref, "w") as f:
                f.create_dataset("data", data=x)

        def read(ref=ref):
            with h5py.File(ref, "r") as f:
                return f["data"][...]

        opts = {"data_size": shape, "path": str(tmp)}
        yield "WriteNonMPI", opts, "h5py create_dataset", write
        yield "ReadNonMPI", opts, "h5py dset[...]", read

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for shape in [(32, 32), (512, 512)] if quick else [(32, 32), (256, 256), (1024, 1024)]:
        s, r = u(*shape), np.zeros(shape, f32)
        yield (
            "AllReduce",
            {"data_size": shape},
            "comm.Allreduce",
            lambda s=s, r=r: comm.Allreduce(s, r, op=MPI.SUM),
        )
        g = np.zeros((comm.Get_size(), *shape), f32)
        yield (
            "AllGather",
            {"data_size": shape},
            "comm.Allgather",
            lambda s=s, g=g: comm.Allgather(s, g),
        )
        yield "Broadcast", {"data_size": shape}, "comm.Bcast", lambda s=s: comm.Bcast(s, root=0)
    yield "Barrier", {}, "comm.Barrier", comm.Barrier
    yield "Sleep", {"duration": 0.001}, "time.sleep(0.001)", lambda: time.sleep(0.001)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-k", metavar="TEXT", default="", help="only kernels whose name contains TEXT")
    args = p.parse_args()
    rounds = 5 if args.quick else 15
    results = []
    with tempfile.TemporaryDirectory(prefix="simai-bench-kernels-") as tmp:
        for name, kwargs, ref_name, ref in cases(args.quick, Path(tmp)):
            if args.k.lower() not in name.lower():
                continue
            kernel = get_kernel(name)
            # Interleave the two measurements so machine load hits both alike.
            ours, theirs = [], []
            for _ in range(3):
                ours.append(median_time(lambda k=kernel, kw=kwargs: k(**kw), rounds=rounds))
                theirs.append(median_time(ref, rounds=rounds))
            size = kwargs.get("data_size", "")
            results.append(
                Result(
                    suite="kernels",
                    case=f"{name} {size}".strip(),
                    ours=min(ours),
                    reference=min(theirs),
                    reference_name=ref_name,
                )
            )
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        report("simai.kernels call vs plain expression (cpu, same run)", results, args.json)


if __name__ == "__main__":
    main()
