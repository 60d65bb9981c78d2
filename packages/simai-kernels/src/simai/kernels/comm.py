"""Communication kernels: MPI collectives and a halo exchange.

``backend="auto"`` uses NCCL (``cupy.cuda.nccl``) for ``device="cuda"`` and MPI
(mpi4py) otherwise; ``backend="mpi"`` with a GPU device hands device arrays to MPI and
so needs a GPU-aware MPI. ``comm`` defaults to ``MPI.COMM_WORLD``; every call is
collective over it. NCCL communicators are created once per (MPI communicator, GPU)
and cached for the life of the process.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from simai.kernels import _deps
from simai.kernels._base import BaseKernel, Call, seeded

__all__ = ["AllGather", "AllReduce", "AllToAll", "Barrier", "Broadcast", "HaloExchange", "Reduce"]

_OPS = ("sum", "prod", "max", "min")


class _CommKernel(BaseKernel):
    family = "comm"
    mpi = True
    default_size = (32, 32)
    dtype_kinds = "iufc"
    options = {"backend": "auto"}
    alloc_options = ("backend",)

    def check(self, call: Call) -> None:
        backend = call.options["backend"]
        if backend not in ("auto", "mpi", "nccl"):
            raise ValueError(
                f"{self.name}: backend must be 'auto', 'mpi' or 'nccl', got {backend!r}"
            )
        if backend == "nccl" and call.backend.kind != "cuda":
            raise ValueError(
                f"{self.name}: backend='nccl' needs device='cuda', got {call.backend.device!r}"
            )
        op = call.options.get("op")
        if op is not None:
            if op not in _OPS:
                raise ValueError(f"{self.name}: op must be one of {_OPS}, got {op!r}")
            if call.dtype.kind == "c" and op in ("max", "min"):
                raise ValueError(
                    f"{self.name}: op={op!r} is undefined for complex dtype {call.dtype}"
                )
        root = call.options.get("root")
        if root is not None and not (isinstance(root, int) and 0 <= root < call.size):
            raise ValueError(f"{self.name}: root must be a rank in [0, {call.size}), got {root!r}")

    @staticmethod
    def uses_nccl(call: Call) -> bool:
        return call.options["backend"] == "nccl" or (
            call.options["backend"] == "auto" and call.backend.kind == "cuda"
        )

    def setup(self, call: Call) -> dict[str, Any]:
        state = self.buffers_for(call)
        state["MPI"] = _deps.mpi()
        if self.uses_nccl(call):
            state["nccl"] = _nccl_comm(call)
        return state

    def buffers_for(self, call: Call) -> dict[str, Any]:
        return {}

    def run(self, call: Call, s: dict[str, Any]) -> None:
        if "nccl" in s:
            self.run_nccl(call, s, s["nccl"], call.xp.cuda.get_current_stream().ptr)
        else:
            if call.backend.kind != "cpu":
                # MPI reads device memory directly (GPU-aware MPI): finish pending writes first.
                call.backend.synchronize()
            self.run_mpi(call, s, s["MPI"])

    def run_mpi(self, call: Call, s: dict[str, Any], MPI: Any) -> None:
        raise NotImplementedError

    def run_nccl(self, call: Call, s: dict[str, Any], nc: Any, stream: int) -> None:
        raise NotImplementedError


# -- NCCL plumbing ----------------------------------------------------------------------

_nccl_lock = threading.Lock()
_nccl_comms: dict[tuple[int, int], tuple[Any, Any]] = {}


def _nccl_comm(call: Call) -> Any:
    """The NCCL communicator for (MPI comm, GPU), created collectively on first use."""
    key = (id(call.comm), call.backend.index)
    with _nccl_lock:
        if key in _nccl_comms:
            return _nccl_comms[key][1]
    nccl = _deps.require("cupy.cuda.nccl", "cuda", "NCCL comm kernels on device='cuda'")
    uid = nccl.get_unique_id() if call.rank == 0 else None
    uid = call.comm.bcast(uid, root=0)
    with call.backend.activate():
        nc = nccl.NcclCommunicator(call.size, uid, call.rank)
    with _nccl_lock:
        # Keep the MPI comm alive beside it so id(comm) is not reused by another object.
        _nccl_comms[key] = (call.comm, nc)
    return nc


def _nccl_args(a: Any, dtype: np.dtype) -> tuple[int, int, int]:
    """(pointer, count, NCCL datatype); complex arrays travel as pairs of reals."""
    from cupy.cuda import nccl

    if dtype.kind == "c":
        dtype = np.dtype(f"f{dtype.itemsize // 2}")
        count = a.size * 2
    else:
        count = a.size
    types = {
        "f2": nccl.NCCL_FLOAT16,
        "f4": nccl.NCCL_FLOAT32,
        "f8": nccl.NCCL_FLOAT64,
        "i1": nccl.NCCL_INT8,
        "u1": nccl.NCCL_UINT8,
        "i4": nccl.NCCL_INT32,
        "u4": nccl.NCCL_UINT32,
        "i8": nccl.NCCL_INT64,
        "u8": nccl.NCCL_UINT64,
    }
    code = f"{dtype.kind}{dtype.itemsize}"
    if code not in types:
        raise ValueError(f"NCCL has no datatype for {dtype}")
    return a.data.ptr, count, types[code]


def _nccl_op(op: str) -> int:
    from cupy.cuda import nccl

    return {
        "sum": nccl.NCCL_SUM,
        "prod": nccl.NCCL_PROD,
        "max": nccl.NCCL_MAX,
        "min": nccl.NCCL_MIN,
    }[op]


def _mpi_op(MPI: Any, op: str) -> Any:
    return {"sum": MPI.SUM, "prod": MPI.PROD, "max": MPI.MAX, "min": MPI.MIN}[op]


# -- the kernels ------------------------------------------------------------------------


def _send_recv(call: Call) -> dict[str, Any]:
    """A seeded ``send`` array and a zeroed ``recv`` of the same shape (reductions)."""
    be = call.backend
    return {
        "send": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
        "recv": be.zeros(call.shape, call.dtype),
    }


class AllReduce(_CommKernel):
    """Every rank gets the elementwise ``op`` (default sum) of all ranks' ``send`` arrays."""

    options = {"backend": "auto", "op": "sum"}

    def buffers_for(self, call: Call) -> dict[str, Any]:
        return _send_recv(call)

    def run_mpi(self, call, s, MPI):
        call.comm.Allreduce(s["send"], s["recv"], op=_mpi_op(MPI, call.options["op"]))

    def run_nccl(self, call, s, nc, stream):
        sp, n, t = _nccl_args(s["send"], call.dtype)
        nc.allReduce(sp, s["recv"].data.ptr, n, t, _nccl_op(call.options["op"]), stream)


class AllGather(_CommKernel):
    """Every rank gets ``recv[r] = send`` of rank ``r``; ``recv`` has shape ``(nranks, *data_size)``."""

    def buffers_for(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "send": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "recv": be.zeros((call.size, *call.shape), call.dtype),
        }

    def run_mpi(self, call, s, MPI):
        call.comm.Allgather(s["send"], s["recv"])

    def run_nccl(self, call, s, nc, stream):
        sp, n, t = _nccl_args(s["send"], call.dtype)
        nc.allGather(sp, s["recv"].data.ptr, n, t, stream)


class Broadcast(_CommKernel):
    """Rank ``root`` sends ``buf`` to every rank (in place)."""

    options = {"backend": "auto", "root": 0}

    def buffers_for(self, call: Call) -> dict[str, Any]:
        return {"buf": call.backend.asarray(seeded(call.shape, call.dtype, call.rank, 1))}

    def run_mpi(self, call, s, MPI):
        call.comm.Bcast(s["buf"], root=call.options["root"])

    def run_nccl(self, call, s, nc, stream):
        p, n, t = _nccl_args(s["buf"], call.dtype)
        nc.bcast(p, n, t, call.options["root"], stream)


class Reduce(_CommKernel):
    """Rank ``root`` gets the elementwise ``op`` (default sum) of all ranks' ``send`` arrays."""

    options = {"backend": "auto", "op": "sum", "root": 0}

    def buffers_for(self, call: Call) -> dict[str, Any]:
        return _send_recv(call)

    def run_mpi(self, call, s, MPI):
        call.comm.Reduce(
            s["send"], s["recv"], op=_mpi_op(MPI, call.options["op"]), root=call.options["root"]
        )

    def run_nccl(self, call, s, nc, stream):
        sp, n, t = _nccl_args(s["send"], call.dtype)
        nc.reduce(
            sp, s["recv"].data.ptr, n, t, _nccl_op(call.options["op"]), call.options["root"], stream
        )


class AllToAll(_CommKernel):
    """Rank ``i`` sends block ``send[j]`` to rank ``j``, which stores it in ``recv[i]``.

    ``data_size`` is the shape of one block; ``send`` and ``recv`` are ``(nranks, *data_size)``.
    """

    def buffers_for(self, call: Call) -> dict[str, Any]:
        be = call.backend
        shape = (call.size, *call.shape)
        return {
            "send": be.asarray(seeded(shape, call.dtype, call.rank, 1)),
            "recv": be.zeros(shape, call.dtype),
        }

    def run_mpi(self, call, s, MPI):
        call.comm.Alltoall(s["send"], s["recv"])

    def run_nccl(self, call, s, nc, stream):
        from cupy.cuda import nccl

        nccl.groupStart()
        for peer in range(call.size):
            sp, n, t = _nccl_args(s["send"][peer], call.dtype)
            nc.send(sp, n, t, peer, stream)
            nc.recv(s["recv"][peer].data.ptr, n, t, peer, stream)
        nccl.groupEnd()


class Barrier(_CommKernel):
    """All ranks wait for each other (``data_size`` is ignored).

    With NCCL it is a one-element all-reduce, which also orders the GPU streams.
    """

    default_size = (1,)

    def buffers_for(self, call: Call) -> dict[str, Any]:
        return {"token": call.backend.zeros((1,), np.dtype("float32"))}

    def run_mpi(self, call, s, MPI):
        call.comm.Barrier()

    def run_nccl(self, call, s, nc, stream):
        p, n, t = _nccl_args(s["token"], np.dtype("float32"))
        nc.allReduce(p, p, n, t, _nccl_op("sum"), stream)


class HaloExchange(_CommKernel):
    """Exchange ``halo_width`` ghost layers with the neighbours of a Cartesian domain split.

    ``data_size`` is the local interior (1-D, 2-D or 3-D); the array ``u`` holds it with
    ghost layers on every side. Ranks form an ``MPI.Compute_dims`` grid (periodic unless
    ``periodic=False``). Dimensions are exchanged one after another over full faces,
    so edge and corner ghosts are filled too.
    """

    default_size = (64, 64)
    ndims = (1, 2, 3)
    options = {"backend": "auto", "halo_width": 1, "periodic": True}
    alloc_options = ("backend", "halo_width", "periodic")

    def check(self, call: Call) -> None:
        super().check(call)
        h = call.options["halo_width"]
        if not isinstance(h, int) or h < 1 or h > min(call.shape):
            raise ValueError(
                f"HaloExchange: halo_width must be an int in [1, {min(call.shape)}], got {h!r}"
            )

    def buffers_for(self, call: Call) -> dict[str, Any]:
        MPI = _deps.mpi()
        be, h, nd = call.backend, call.options["halo_width"], len(call.shape)
        dims = MPI.Compute_dims(call.size, nd)
        cart = call.comm.Create_cart(
            dims, periods=[bool(call.options["periodic"])] * nd, reorder=False
        )
        padded = tuple(n + 2 * h for n in call.shape)
        u = be.zeros(padded, call.dtype)
        u[tuple(slice(h, h + n) for n in call.shape)] = be.asarray(
            seeded(call.shape, call.dtype, call.rank, 1)
        )
        faces = []
        for d, n in enumerate(call.shape):

            def sl(lo: int, hi: int, d: int = d) -> tuple[slice, ...]:
                return tuple(slice(lo, hi) if i == d else slice(None) for i in range(nd))

            lower, upper = cart.Shift(d, 1)
            face_shape = (*padded[:d], h, *padded[d + 1 :])
            faces.append(
                {
                    "lower": lower,
                    "upper": upper,
                    # (slice sent, slice received into, buffers), one entry per direction
                    "up": (
                        sl(n, n + h),
                        sl(0, h),
                    ),  # top interior -> upper; lower's top -> my low ghost
                    "down": (sl(h, 2 * h), sl(n + h, n + 2 * h)),  # bottom interior -> lower
                    "sbuf": (be.zeros(face_shape, call.dtype), be.zeros(face_shape, call.dtype)),
                    "rbuf": (be.zeros(face_shape, call.dtype), be.zeros(face_shape, call.dtype)),
                }
            )
        return {
            "u": u,
            "cart": cart,
            "dims": tuple(dims),
            "coords": tuple(cart.Get_coords(cart.Get_rank())),
            "faces": faces,
        }

    def run_mpi(self, call, s, MPI):
        u, xp, cart, gpu = s["u"], call.xp, s["cart"], call.backend.kind != "cpu"
        for d, f in enumerate(s["faces"]):
            (up_send, up_recv), (dn_send, dn_recv) = f["up"], f["down"]
            xp.copyto(f["sbuf"][0], u[up_send])
            xp.copyto(f["sbuf"][1], u[dn_send])
            if gpu:
                call.backend.synchronize()
            reqs = [
                cart.Irecv(f["rbuf"][0], source=f["lower"], tag=2 * d),
                cart.Irecv(f["rbuf"][1], source=f["upper"], tag=2 * d + 1),
                cart.Isend(f["sbuf"][0], dest=f["upper"], tag=2 * d),
                cart.Isend(f["sbuf"][1], dest=f["lower"], tag=2 * d + 1),
            ]
            MPI.Request.Waitall(reqs)
            if f["lower"] != MPI.PROC_NULL:
                u[up_recv] = f["rbuf"][0]
            if f["upper"] != MPI.PROC_NULL:
                u[dn_recv] = f["rbuf"][1]

    def run_nccl(self, call, s, nc, stream):
        from cupy.cuda import nccl

        MPI = _deps.mpi()
        u, xp, me = s["u"], call.xp, call.rank
        for f in s["faces"]:
            (up_send, up_recv), (dn_send, dn_recv) = f["up"], f["down"]
            xp.copyto(f["sbuf"][0], u[up_send])
            xp.copyto(f["sbuf"][1], u[dn_send])
            # NCCL matches send/recv per peer in issue order: "up" first, then "down".
            nccl.groupStart()
            for i, (dest, src) in enumerate(((f["upper"], f["lower"]), (f["lower"], f["upper"]))):
                sp, n, t = _nccl_args(f["sbuf"][i], call.dtype)
                if dest not in (MPI.PROC_NULL, me):
                    nc.send(sp, n, t, dest, stream)
                if src not in (MPI.PROC_NULL, me):
                    nc.recv(f["rbuf"][i].data.ptr, n, t, src, stream)
            nccl.groupEnd()
            for i, (src, recv) in enumerate(((f["lower"], up_recv), (f["upper"], dn_recv))):
                if src == me:
                    xp.copyto(u[recv], f["sbuf"][i])
                elif src != MPI.PROC_NULL:
                    xp.copyto(u[recv], f["rbuf"][i])
