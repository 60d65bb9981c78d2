"""simai.kernels: each kernel call against the plain numpy (or h5py / mpi4py) expression.

For every kernel and size, "ours" is the median wall time of ``kernel(device="cpu", ...)``
-- argument checks, cached-input look-up and timing included -- and "reference" is the
median wall time of the same operation written directly, on inputs of the same shape
and dtype, measured in the same run. A ratio near 1.0 means the kernel layer adds
nothing; below 1.0 means our preallocated outputs beat the allocating expression.

    python bench/kernels.py [--quick] [--json PATH] [--device cuda[:N]]

With ``--device cuda`` every figure is device time: "ours" is the kernel's own
``device_dt`` and "reference" the same cupy expression timed with CUDA events; matmul
throughput is put against the device's FP32 peak (SMs x FP32 lanes x 2 x clock) and the
host<->device copies against the PCIe link (generation x width, from nvidia-smi).

Comm kernels run as one rank (an MPI singleton) here; run under ``mpiexec -n 2`` to time
real collectives (rank 0 reports). BLAS runs single-threaded unless OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS / MKL_NUM_THREADS say otherwise: on a shared machine a multi-threaded BLAS
varies 10x from one call to the next, which drowns the comparison.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, median_time, note, parser, report  # noqa: E402

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

    try:
        import h5py
    except ImportError:
        note("the I/O kernels are skipped: h5py is not installed (the simai-kernels[hdf5] extra)")
        io = []

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

    MPI = _mpi()
    if MPI is None:
        yield "Sleep", {"duration": 0.001}, "time.sleep(0.001)", lambda: time.sleep(0.001)
        return
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


def _mpi():
    """mpi4py's MPI, or None (with a note) where mpi4py or an MPI library is missing."""
    try:
        from mpi4py import MPI

        MPI.Get_version()  # loads the library: RuntimeError when there is none
    except (ImportError, RuntimeError) as exc:
        note(
            f"the comm kernels are skipped: {exc} (install simai-kernels[mpich], or "
            "simai-kernels[mpi] with the site's MPI loaded)"
        )
        return None
    return MPI


# --------------------------------------------------------------------------- on a GPU
# FP32 lanes per SM by compute capability (NVIDIA's CUDA programming guide, arithmetic
# instructions table); an unlisted one gets no peak, and its rows no ratio.
_FP32_PER_SM = {
    (7, 0): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
}
# Usable GB/s per PCIe lane, by generation (after encoding).
_PCIE_LANE_GBPS = {3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}


def _cupy(device: str):
    try:
        import cupy as cp
    except ImportError:
        sys.exit(
            f"--device {device}: cupy is not installed (pip install './packages/simai-kernels[cuda]')"
        )
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except cp.cuda.runtime.CUDARuntimeError as exc:
        sys.exit(f"--device {device}: no CUDA device or driver found ({exc})")
    index = int(device.partition(":")[2] or 0)
    if index >= n:
        sys.exit(f"--device {device}: this machine has {n} CUDA device(s)")
    cp.cuda.Device(index).use()
    return cp, index


def _event_time(cp, fn, rounds: int) -> float:
    """Median device seconds of ``fn()`` between two CUDA events, after one warm-up call."""
    fn()
    cp.cuda.Device().synchronize()
    samples = []
    for _ in range(rounds):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(samples)


def _peak_tflops(cp, index: int) -> float | None:
    props = cp.cuda.runtime.getDeviceProperties(index)
    lanes = _FP32_PER_SM.get((props["major"], props["minor"]))
    clock_khz = props.get("clockRate") or _smi(index, "clocks.max.sm") * 1e3
    if lanes is None or not clock_khz:
        return None
    return props["multiProcessorCount"] * lanes * 2 * clock_khz * 1e3 / 1e12


def _smi(index: int, field: str) -> float:
    out = subprocess.run(
        ["nvidia-smi", f"--id={index}", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        return 0.0


def _link_gbps(index: int) -> float | None:
    gen, width = _smi(index, "pcie.link.gen.max"), _smi(index, "pcie.link.width.max")
    lane = _PCIE_LANE_GBPS.get(int(gen))
    return lane * width if lane and width else None


def device_results(device: str, quick: bool, rounds: int, only: str) -> list[Result]:
    cp, index = _cupy(device)
    peak, link = _peak_tflops(cp, index), _link_gbps(index)
    results = []

    def wanted(name: str) -> bool:
        return only.lower() in name.lower()

    def ours_device(name: str, **kw) -> float:
        k = get_kernel(name)
        k(device=device, **kw)  # warm-up: allocation and plan caches
        return statistics.median(k(device=device, **kw).device_dt for _ in range(rounds))

    def add(case: str, ours: float, ref: float | None, ref_name: str, unit: str = "s") -> None:
        results.append(Result("kernels", case, ours, ref, ref_name, unit=unit))

    rng = cp.random.default_rng(0)
    for n in ([1024, 4096] if quick else [1024, 4096, 8192]) if wanted("MatMulSimple2D") else []:
        a, b = rng.random((n, n), dtype=cp.float32), rng.random((n, n), dtype=cp.float32)
        ours = ours_device("MatMulSimple2D", data_size=(n, n))
        raw = _event_time(cp, lambda a=a, b=b: a @ b, rounds)
        add(f"MatMulSimple2D {n}x{n} ({device})", ours, raw, "cupy a @ b, events")
        peak_name = "FP32 peak" if peak else "FP32 peak unknown for this device"
        add(
            f"MatMulSimple2D {n}x{n} throughput", 2 * n**3 / ours / 1e12, peak, peak_name, "TFLOP/s"
        )
    for shape in [(128, 128, 128)] if quick else [(64, 64, 64), (256, 256, 256)]:
        x, y = rng.random(shape, dtype=cp.float32), rng.random(shape, dtype=cp.float32)
        for name, expr, fn in (
            ("AXPY", "1.01 * x + y", lambda x=x, y=y: 1.01 * x + y),
            ("FFT", "cp.fft.fft(x)", lambda x=x: cp.fft.fft(x)),
            ("InplaceCompute", "cp.exp(x)", lambda x=x: cp.exp(x)),
        ):
            if wanted(name):
                ours = ours_device(name, data_size=shape)
                raw = _event_time(cp, fn, rounds)
                add(f"{name} {shape} ({device})", ours, raw, f"{expr}, events")
    nbytes = 64 << 20 if quick else 256 << 20
    shape = (nbytes // 4,)
    dev = cp.zeros(shape, cp.float32)
    host = np.frombuffer(cp.cuda.alloc_pinned_memory(nbytes), np.float32, shape[0])
    link_name = "PCIe link" if link else "PCIe link unknown (nvidia-smi)"
    for name, fn in (
        ("CopyHostToDevice", lambda: dev.set(host)),
        ("CopyDeviceToHost", lambda: dev.get(out=host)),
    ):
        if wanted(name):
            ours = ours_device(name, data_size=shape)
            raw = _event_time(cp, fn, rounds)
            add(f"{name} {nbytes >> 20} MiB ({device})", ours, raw, "cupy on pinned memory, events")
            add(
                f"{name} {nbytes >> 20} MiB bandwidth", nbytes / ours / 1e9, link, link_name, "GB/s"
            )
    return results


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-k", metavar="TEXT", default="", help="only kernels whose name contains TEXT")
    p.add_argument("--device", default="cpu", help="cpu (default), or cuda[:N] for device time")
    args = p.parse_args()
    if args.device != "cpu":
        results = device_results(args.device, args.quick, 5 if args.quick else 20, args.k)
        report(
            f"simai.kernels device time vs raw cupy ({args.device}, same run)", results, args.json
        )
        return
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
    MPI = _mpi() if "mpi4py.MPI" in sys.modules else None
    if MPI is None or MPI.COMM_WORLD.Get_rank() == 0:
        report("simai.kernels call vs plain expression (cpu, same run)", results, args.json)


if __name__ == "__main__":
    main()
