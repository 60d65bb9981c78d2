"""Shared machinery of the built-in kernels: argument checks, the input cache, timing."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simai.kernels import _deps
from simai.kernels.protocols import KernelTiming
from simai.kernels.registry import close_matches
from simai.kernels.xp import Backend, get_backend

__all__ = ["BaseKernel", "Call", "clear_cache", "seeded"]

SEED = 20240611


def seeded(shape: tuple[int, ...], dtype: np.dtype, rank: int = 0, salt: int = 0) -> np.ndarray:
    """Finite, reproducible values in [-1, 1) (complex: both parts), distinct per rank.

    Bounded values keep repeated in-place kernels (AXPY, ScatterAdd) far from overflow
    and keep transcendental ops off their slow paths (no inf/nan/denormals).
    """
    rng = np.random.default_rng([SEED, rank, salt])
    if dtype.kind == "c":
        real = rng.uniform(-1.0, 1.0, shape) + 1j * rng.uniform(-1.0, 1.0, shape)
        return real.astype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    raise ValueError(f"unsupported dtype {dtype}")


class _Cache:
    """A small LRU of kernel inputs keyed by (kernel, device, shape, dtype, ...)."""

    def __init__(self) -> None:
        self._maxsize: int | None = None
        self._data: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped whenever an entry leaves, so kernels' memoised look-ups know to refresh.
        self.generation = 0

    @property
    def maxsize(self) -> int:
        # Read at first use, not at import: a bad SIMAI_KERNELS_CACHE_SIZE must not break
        # ``import simai.kernels``, and the error names the variable.
        if self._maxsize is None:
            self._maxsize = _deps.env_int("SIMAI_KERNELS_CACHE_SIZE", 32)
        return self._maxsize

    def get(self, key: Hashable, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        # Allocation and, for comm kernels, communicator creation run outside the lock:
        # collective set-up must not wait on another thread's cache entry.
        maxsize = self.maxsize
        state = create()
        with self._lock:
            state = self._data.setdefault(key, state)
            self._data.move_to_end(key)
            while len(self._data) > maxsize:
                self._data.popitem(last=False)
                self.generation += 1
        return state

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.generation += 1


_CACHE = _Cache()


def clear_cache() -> None:
    """Drop every cached kernel input (and the device memory it holds)."""
    _CACHE.clear()


@dataclass(frozen=True)
class Call:
    """Validated arguments of one kernel call."""

    backend: Backend
    shape: tuple[int, ...]
    dtype: np.dtype
    comm: Any
    rank: int
    size: int
    options: dict[str, Any]

    @property
    def xp(self):
        return self.backend.xp


class BaseKernel:
    """Base of the built-in kernels; third-party kernels may subclass it too.

    Subclasses set ``family``, ``default_size`` and ``options`` (name -> default), and
    implement ``setup`` (allocate inputs once; the result is cached) and ``run`` (the
    timed operation). ``name`` defaults to the class name.
    """

    name: ClassVar[str]
    family: ClassVar[str] = "misc"
    default_size: ClassVar[tuple[int, ...]] = (256, 256)
    ndims: ClassVar[tuple[int, ...] | None] = None  # allowed len(data_size); None = any
    dtype_kinds: ClassVar[str] = "fc"  # numpy dtype kinds accepted
    options: ClassVar[dict[str, Any]] = {}
    alloc_options: ClassVar[tuple[str, ...]] = ()  # options that change the inputs (cache key)
    mpi: ClassVar[bool] = False  # True: comm=None means MPI.COMM_WORLD

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __getstate__(self) -> dict[str, Any]:
        # The memo holds device modules and arrays; a kernel travels as its name and class.
        return {k: v for k, v in self.__dict__.items() if k != "_fast"}

    def __repr__(self) -> str:
        return f"<{self.family} kernel {self.name}>"

    # -- the public call -------------------------------------------------------------
    def __call__(
        self,
        device: str = "cpu",
        data_size: tuple[int, ...] | int | None = None,
        dtype: str = "float32",
        comm: Any = None,
        **options: Any,
    ) -> KernelTiming:
        call, state = self._lookup(device, data_size, dtype, comm, options)
        self.prepare(call, state)
        if call.backend.kind == "cpu":  # the common case, without a context manager's cost
            t0 = time.perf_counter()
            self.run(call, state)
            dt = time.perf_counter() - t0
            return KernelTiming(dt, dt)
        with call.backend.timer() as timer:
            self.run(call, state)
        return timer.result

    def _lookup(self, device, data_size, dtype, comm, options) -> tuple[Call, dict[str, Any]]:
        """Validated call and cached inputs; repeated identical calls skip validation."""
        fast = self.__dict__.get("_fast")
        if fast is None:
            fast = self.__dict__["_fast"] = {}
        key: Hashable | None = (device, data_size, dtype, id(comm), tuple(options.items()))
        try:
            hit = fast.get(key)
        except TypeError:  # unhashable arguments (a list data_size, say): validate every time
            key, hit = None, None
        if hit is not None and hit[2] == _CACHE.generation:
            return hit[0], hit[1]
        call = self.resolve(device, data_size, dtype, comm, options)
        state = self._state(call)
        if key is not None:
            if len(fast) >= 64:
                fast.clear()
            fast[key] = (call, state, _CACHE.generation)
        return call, state

    def buffers(
        self,
        device: str = "cpu",
        data_size: tuple[int, ...] | int | None = None,
        dtype: str = "float32",
        comm: Any = None,
        **options: Any,
    ) -> dict[str, Any]:
        """The cached arrays a call with these arguments works on (for checking results)."""
        return self._lookup(device, data_size, dtype, comm, options)[1]

    # -- hooks for subclasses ----------------------------------------------------------
    def setup(self, call: Call) -> dict[str, Any]:
        return {}

    def prepare(self, call: Call, state: dict[str, Any]) -> None:
        """Untimed work before each call (e.g. create the file a read kernel reads)."""

    def run(self, call: Call, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def check(self, call: Call) -> None:
        """Kernel-specific validation of shape/dtype/options; raise ValueError."""

    def shape_for(
        self, data_size: Any, dtype: np.dtype, options: dict[str, Any]
    ) -> tuple[int, ...]:
        return _shape(self.name, data_size if data_size is not None else self.default_size)

    # -- internals ---------------------------------------------------------------------
    def resolve(self, device: str, data_size: Any, dtype: Any, comm: Any, options: dict) -> Call:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = sorted(self.options)
            msgs = []
            for opt in unknown:
                close = close_matches(opt, known, n=1, cutoff=0.6)
                msgs.append(f"{opt!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise TypeError(
                f"{self.name} got unknown option(s) {', '.join(msgs)}; "
                f"it accepts {', '.join(known) if known else 'no options'}"
            )
        opts = {**self.options, **options}
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError) as exc:  # numpy raises either for junk
            raise ValueError(f"{self.name}: dtype {dtype!r} is not a numpy dtype") from exc
        if dt.kind not in self.dtype_kinds:
            raise ValueError(
                f"{self.name}: dtype {dt} is not supported (kinds {self.dtype_kinds!r} only, "
                "e.g. float32, float64, complex64)"
            )
        shape = self.shape_for(data_size, dt, opts)
        if self.ndims is not None and len(shape) not in self.ndims:
            raise ValueError(
                f"{self.name}: data_size must have {' or '.join(map(str, self.ndims))} "
                f"dimension(s), got {shape}"
            )
        backend = get_backend(device)
        if self.mpi:
            if comm is None:
                comm = _deps.mpi().COMM_WORLD
            rank, size = comm.Get_rank(), comm.Get_size()
        elif comm is not None:
            rank, size = comm.Get_rank(), comm.Get_size()
        else:
            rank, size = _deps.env_rank(), _deps.env_size()
        call = Call(backend, shape, dt, comm, rank, size, opts)
        self.check(call)
        return call

    def _state(self, call: Call) -> dict[str, Any]:
        key = (
            self.name,
            type(self).__module__,
            call.backend.device,
            call.shape,
            call.dtype.str,
            id(call.comm) if call.comm is not None else None,
            call.rank,
            tuple(_hashable(call.options[k]) for k in self.alloc_options),
        )

        def create() -> dict[str, Any]:
            with call.backend.activate():
                state = self.setup(call)
            if call.comm is not None:
                state.setdefault("_comm", call.comm)  # keeps id(comm) in the key valid
            return state

        return _CACHE.get(key, create)


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _shape(name: str, data_size: Any) -> tuple[int, ...]:
    if isinstance(data_size, (int, np.integer)) and not isinstance(data_size, bool):
        data_size = (data_size,)
    try:
        shape = tuple(int(n) for n in data_size)
        ok = len(shape) > 0 and all(
            n > 0 and float(n) == float(orig) for n, orig in zip(shape, data_size, strict=True)
        )
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: data_size must be a positive int or a tuple of positive ints, got {data_size!r}"
        )
    return shape
