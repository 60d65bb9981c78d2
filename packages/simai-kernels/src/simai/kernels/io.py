"""I/O kernels: HDF5 files written and read through h5py, per rank or collectively.

File layout (all kernels): dataset ``data`` (option ``dataset``) in a file under ``path``.

* ``WriteNonMPI`` / ``ReadNonMPI``: one file per rank, ``data_<rank>[_<suffix>].h5``,
  dataset shape ``data_size``. The rank comes from ``comm`` when given, else from the
  launcher's environment (PMI_RANK, OMPI_COMM_WORLD_RANK, ...), else 0: no MPI needed.
* ``WriteSingleRank``: rank 0 alone writes ``data[_<suffix>].h5``; other ranks return at once.
* ``WriteWithMPI`` / ``ReadWithMPI``: one shared file ``data[_<suffix>].h5``, dataset
  shape ``(nranks, *data_size)``, rank ``r`` owns row ``r``. The dataset is contiguous so
  that the two collective paths produce the same file:

  - ``method="mpio"``: h5py's ``mpio`` driver, collective transfer (parallel h5py).
  - ``method="mpiio"``: rank 0 lays the file out with serial h5py (contiguous dataset,
    space allocated early, no fill), broadcasts the dataset's byte offset, and all ranks
    move their rows with ``MPI.File.Write_at_all`` / ``Read_at_all``. The result is an
    ordinary HDF5 file that any h5py reads.
  - ``method="auto"`` (default) picks ``mpio`` when h5py was built with MPI, else ``mpiio``.

With a GPU ``device`` the data lives on the device and the timed call includes the
staging copy through (page-locked) host memory, as a GPU simulation's output would.
A read kernel whose file is missing writes it first, untimed (``create_missing=True``).
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from simai.kernels import _deps
from simai.kernels._base import BaseKernel, Call, seeded

__all__ = [
    "ReadNonMPI",
    "ReadWithMPI",
    "WriteNonMPI",
    "WriteSingleRank",
    "WriteWithMPI",
    "default_io_dir",
]

_SUFFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def default_io_dir() -> Path:
    """``$SIMAI_KERNELS_IO_DIR``, else ``<tmp>/simai-kernels-<user>``."""
    env = os.environ.get("SIMAI_KERNELS_IO_DIR")
    if env:
        return Path(env)
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"simai-kernels-{user}"


class _IOKernel(BaseKernel):
    family = "io"
    default_size = (256, 1024)  # 1 MiB of float32 per rank
    dtype_kinds = "biufc"
    options = {
        "path": None,
        "filename_suffix": None,
        "dataset": "data",
        "num_bytes": None,
        "fsync": False,
    }
    alloc_options = ("path", "filename_suffix", "dataset")
    shared_file = False
    reads = False

    def __call__(
        self,
        device: Any = "cpu",
        data_size: Any = None,
        dtype: Any = "float32",
        comm: Any = None,
        **options: Any,
    ) -> Any:
        legacy_dir = options.pop("data_root_dir", None)
        if legacy_dir is not None:
            warnings.warn(
                f"{self.name}: data_root_dir= is SimAI-Bench's spelling; use path=",
                DeprecationWarning,
                stacklevel=2,
            )
        if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
            # The original's call form: kernel(num_bytes, data_root_dir[, filename_suffix]).
            warnings.warn(
                f"{self.name}(num_bytes, data_root_dir, ...) is the SimAI-Bench call form; "
                f"use {self.name}(num_bytes=..., path=..., filename_suffix=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            options["num_bytes"] = int(device)
            if dtype != "float32":
                options["filename_suffix"] = dtype
            if legacy_dir is None:
                legacy_dir = data_size
            device, data_size, dtype = "cpu", None, "float32"
        if legacy_dir is not None:
            if options.get("path") is not None:
                raise TypeError(f"{self.name}: pass path= or data_root_dir=, not both")
            options["path"] = str(legacy_dir)
        return super().__call__(device, data_size, dtype, comm, **options)

    def shape_for(self, data_size, dtype, options):
        nbytes = options.get("num_bytes")
        if nbytes is None:
            return super().shape_for(data_size, dtype, options)
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < dtype.itemsize:
            raise ValueError(
                f"{self.name}: num_bytes must be an int >= {dtype.itemsize}, got {nbytes!r}"
            )
        return (nbytes // dtype.itemsize,)

    def check(self, call: Call) -> None:
        suffix = call.options["filename_suffix"]
        if suffix is not None and not (isinstance(suffix, str) and _SUFFIX.fullmatch(suffix)):
            # The suffix becomes part of a file name: it must not climb out of ``path``.
            raise ValueError(
                f"{self.name}: filename_suffix must match {_SUFFIX.pattern!r}, got {suffix!r}"
            )
        if not isinstance(call.options["dataset"], str) or not call.options["dataset"]:
            raise ValueError(f"{self.name}: dataset must be a non-empty str")

    def filename(self, call: Call) -> Path:
        directory = (
            Path(call.options["path"]) if call.options["path"] is not None else default_io_dir()
        )
        suffix = call.options["filename_suffix"]
        stem = "data" if self.shared_file else f"data_{call.rank}"
        return directory / (f"{stem}_{suffix}.h5" if suffix else f"{stem}.h5")

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        fn = self.filename(call)
        if call.rank == 0 or not self.shared_file:
            fn.parent.mkdir(parents=True, exist_ok=True)
        if self.reads:
            host = be.host_buffer(call.shape, call.dtype)
            state = {"host": host, "file": fn}
            if be.kind != "cpu":
                state["device"] = be.zeros(call.shape, call.dtype)
            return state
        host = be.host_buffer(call.shape, call.dtype)
        host[...] = seeded(call.shape, call.dtype, call.rank, 1)
        state = {"host": host, "file": fn}
        if be.kind != "cpu":
            state["device"] = be.asarray(host)
        return state

    @staticmethod
    def stage_out(call: Call, s: dict[str, Any]) -> None:
        if "device" in s:
            call.backend.device_to_host(s["host"], s["device"])
            call.backend.synchronize()

    @staticmethod
    def stage_in(call: Call, s: dict[str, Any]) -> None:
        if "device" in s:
            call.backend.host_to_device(s["device"], s["host"])

    @staticmethod
    def fsync(call: Call, fn: Path) -> None:
        if call.options["fsync"]:
            fd = os.open(fn, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_h5(call: Call, fn: Path, data: np.ndarray) -> None:
    h5py = _deps.h5py()
    with h5py.File(fn, "w") as f:
        f.create_dataset(call.options["dataset"], data=data)


class WriteNonMPI(_IOKernel):
    """Each rank writes its own HDF5 file ``data_<rank>[_<suffix>].h5``."""

    def check(self, call: Call) -> None:
        super().check(call)
        _deps.h5py()

    def run(self, call: Call, s: dict[str, Any]) -> None:
        self.stage_out(call, s)
        _write_h5(call, s["file"], s["host"])
        self.fsync(call, s["file"])


class WriteSingleRank(_IOKernel):
    """Rank 0 writes ``data[_<suffix>].h5``; the other ranks do nothing."""

    shared_file = True

    def check(self, call: Call) -> None:
        super().check(call)
        _deps.h5py()

    def run(self, call: Call, s: dict[str, Any]) -> None:
        if call.rank != 0:
            return
        self.stage_out(call, s)
        _write_h5(call, s["file"], s["host"])
        self.fsync(call, s["file"])


class ReadNonMPI(_IOKernel):
    """Each rank reads ``data_<rank>[_<suffix>].h5`` (as written by ``WriteNonMPI``)."""

    options = {**_IOKernel.options, "create_missing": True}
    reads = True

    def check(self, call: Call) -> None:
        super().check(call)
        _deps.h5py()

    def prepare(self, call: Call, s: dict[str, Any]) -> None:
        fn = s["file"]
        if not fn.exists():
            if not call.options["create_missing"]:
                raise FileNotFoundError(
                    f"ReadNonMPI: {fn} does not exist; run WriteNonMPI with the same path, "
                    "filename_suffix and data_size first, or pass create_missing=True"
                )
            _write_h5(call, fn, seeded(call.shape, call.dtype, call.rank, 1))

    def run(self, call: Call, s: dict[str, Any]) -> None:
        h5py = _deps.h5py()
        with h5py.File(s["file"], "r") as f:
            dset = _dataset(f, call, s["file"], call.shape)
            dset.read_direct(s["host"])
        self.stage_in(call, s)


def _dataset(f: Any, call: Call, fn: Path, shape: tuple[int, ...]) -> Any:
    name = call.options["dataset"]
    try:
        dset = f[name]
    except KeyError:
        raise KeyError(f"{fn} has no dataset {name!r} (it has {sorted(f.keys())})") from None
    if dset.shape != shape:
        raise ValueError(f"{fn}:{name} has shape {dset.shape}, expected {shape} from data_size")
    return dset


# -- collective I/O -------------------------------------------------------------------


def _method(call: Call, name: str) -> str:
    h5py = _deps.h5py()
    method = call.options["method"]
    has_mpio = bool(h5py.get_config().mpi)
    if method not in ("auto", "mpio", "mpiio"):
        raise ValueError(f"{name}: method must be 'auto', 'mpio' or 'mpiio', got {method!r}")
    if method == "mpio" and not has_mpio:
        raise RuntimeError(
            f"{name}: method='mpio' needs h5py built with MPI, but h5py {h5py.__version__} "
            "has no 'mpio' driver (h5py.get_config().mpi is False). Build it with "
            "scripts/build-parallel-h5py.sh, or use method='mpiio' (MPI-IO into the same HDF5 layout)."
        )
    return "mpio" if method == "auto" and has_mpio else ("mpiio" if method == "auto" else method)


def _collective(comm: Any, fn: Any) -> Any:
    """Run ``fn`` on rank 0 and broadcast its result; a failure there is raised on every rank."""
    result: Any = None
    if comm.Get_rank() == 0:
        try:
            result = ("ok", fn())
        except Exception as exc:
            result = ("error", f"{type(exc).__name__}: {exc}")
    status, value = comm.bcast(result, root=0)
    if status == "error":
        raise RuntimeError(f"collective HDF5 I/O failed on rank 0: {value}")
    return value


def _layout(call: Call, fn: Path) -> int:
    """Create the shared file with a contiguous, early-allocated dataset; return its byte offset."""
    h5py = _deps.h5py()
    shape = (call.size, *call.shape)
    with h5py.File(fn, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        dset = f.create_dataset(call.options["dataset"], shape, call.dtype, dcpl=dcpl)
        return int(dset.id.get_offset())


def _locate(call: Call, fn: Path) -> int:
    """Byte offset of the shared dataset after checking it matches this call."""
    h5py = _deps.h5py()
    with h5py.File(fn, "r") as f:
        name = call.options["dataset"]
        if name not in f:
            raise KeyError(f"{fn} has no dataset {name!r}")
        dset = f[name]
        if dset.shape[1:] != call.shape or dset.shape[0] < call.size:
            raise ValueError(
                f"{fn}:{name} has shape {dset.shape}, expected ({call.size}, *{call.shape})"
            )
        if dset.dtype != call.dtype:
            raise ValueError(f"{fn}:{name} has dtype {dset.dtype}, expected {call.dtype}")
        offset = dset.id.get_offset()
        if offset is None or dset.chunks is not None or dset.compression is not None:
            raise ValueError(
                f"{fn}:{name} is not a contiguous, allocated dataset, so MPI-IO cannot read it; "
                "use method='mpio' (parallel h5py)"
            )
        return int(offset)


def _mpi_file(call: Call, fn: Path, mode: str) -> Any:
    MPI = _deps.mpi()
    amode = MPI.MODE_WRONLY if mode == "w" else MPI.MODE_RDONLY
    try:
        return MPI.File.Open(call.comm, str(fn), amode)
    except MPI.Exception as exc:
        raise RuntimeError(
            f"MPI-IO could not open {fn} ({exc.Get_error_string()}); collective HDF5 I/O needs "
            "either h5py with the 'mpio' driver or a file system MPI-IO can open"
        ) from exc


class _CollectiveIOKernel(_IOKernel):
    """One file shared by every rank, through h5py's 'mpio' driver or plain MPI-IO (``method``)."""

    options = {**_IOKernel.options, "method": "auto"}
    mpi = True
    shared_file = True

    def check(self, call: Call) -> None:
        super().check(call)
        _method(call, self.name)


class WriteWithMPI(_CollectiveIOKernel):
    """All ranks write row ``rank`` of one shared dataset ``(nranks, *data_size)``, collectively."""

    def run(self, call: Call, s: dict[str, Any]) -> None:
        self.stage_out(call, s)
        if _method(call, self.name) == "mpio":
            _write_mpio(call, s["file"], s["host"])
        else:
            offset = _collective(call.comm, lambda: _layout(call, s["file"]))
            fh = _mpi_file(call, s["file"], "w")
            try:
                fh.Write_at_all(offset + call.rank * s["host"].nbytes, s["host"])
            finally:
                fh.Close()
        if call.options["fsync"] and call.rank == 0:
            self.fsync(call, s["file"])


def _write_mpio(call: Call, fn: Path, host: np.ndarray) -> None:
    h5py = _deps.h5py()
    with h5py.File(fn, "w", driver="mpio", comm=call.comm) as f:
        dset = f.create_dataset(call.options["dataset"], (call.size, *call.shape), call.dtype)
        with dset.collective:
            dset[call.rank] = host


class ReadWithMPI(_CollectiveIOKernel):
    """All ranks read row ``rank`` of the shared dataset written by ``WriteWithMPI``."""

    options = {**_CollectiveIOKernel.options, "create_missing": True}
    reads = True

    def prepare(self, call: Call, s: dict[str, Any]) -> None:
        fn = s["file"]
        exists = call.comm.bcast(fn.exists() if call.rank == 0 else None, root=0)
        if exists:
            return
        if not call.options["create_missing"]:
            raise FileNotFoundError(
                f"ReadWithMPI: {fn} does not exist; run WriteWithMPI with the same path, "
                "filename_suffix and data_size first, or pass create_missing=True"
            )
        writer = WriteWithMPI()
        opts = {k: v for k, v in call.options.items() if k in writer.options}
        writer(call.backend.device, call.shape, call.dtype, call.comm, **opts)

    def run(self, call: Call, s: dict[str, Any]) -> None:
        fn, host = s["file"], s["host"]
        if _method(call, self.name) == "mpio":
            h5py = _deps.h5py()
            with h5py.File(fn, "r", driver="mpio", comm=call.comm) as f:
                dset = f[call.options["dataset"]]
                if dset.shape[1:] != call.shape or dset.shape[0] < call.size:
                    raise ValueError(
                        f"{fn} has shape {dset.shape}, expected ({call.size}, *{call.shape})"
                    )
                with dset.collective:
                    dset.read_direct(host, np.s_[call.rank])
        else:
            offset = _collective(call.comm, lambda: _locate(call, fn))
            fh = _mpi_file(call, fn, "r")
            try:
                fh.Read_at_all(offset + call.rank * host.nbytes, host)
            finally:
                fh.Close()
        self.stage_in(call, s)
