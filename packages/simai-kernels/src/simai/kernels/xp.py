"""The array-module abstraction: one ``Backend`` per device, chosen once per call site.

Kernels are written once against ``backend.xp`` (numpy, cupy or dpnp). The few things
the array modules do differently -- synchronising, timing, host<->device copies, random
fills -- live here, so kernel code never branches per element or per device.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from simai.kernels._deps import require
from simai.kernels.protocols import KernelTiming
from simai.kernels.registry import did_you_mean

__all__ = [
    "DEVICES",
    "DEVICE_ENV",
    "Backend",
    "Timer",
    "check_device",
    "get_backend",
    "parse_device",
]

DEVICES = ("cpu", "cuda", "xpu")
#: Run-wide device override: ``SIMAI_DEVICE=cpu`` runs a workflow written for ``xpu`` on a laptop.
DEVICE_ENV = "SIMAI_DEVICE"


class Timer:
    """Result holder filled when the timed block exits."""

    result: KernelTiming = KernelTiming(0.0, 0.0)


@dataclass(eq=False)
class Backend:
    """One device's array module plus the operations that differ between modules."""

    device: str  # canonical, e.g. "cpu", "cuda:0", "xpu:0"
    kind: str  # "cpu" | "cuda" | "xpu"
    index: int
    xp: ModuleType
    _native: Any = field(default=None, repr=False)  # cupy.cuda.Device or dpctl.SyclQueue

    # -- allocation ---------------------------------------------------------------
    def asarray(self, host: np.ndarray) -> Any:
        """A device copy of a host array (a private copy on cpu, so callers may mutate it)."""
        if self.kind == "cpu":
            return np.array(host, copy=True)
        if self.kind == "cuda":
            with self._native:
                return self.xp.asarray(host)
        return self.xp.asarray(host, sycl_queue=self._native)

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        if self.kind == "cpu":
            return np.zeros(shape, dtype)
        if self.kind == "cuda":
            with self._native:
                return self.xp.zeros(shape, dtype)
        return self.xp.zeros(shape, dtype=dtype, sycl_queue=self._native)

    def host_buffer(
        self, shape: tuple[int, ...], dtype: np.dtype, pinned: bool = True
    ) -> np.ndarray:
        """A zeroed host array; page-locked on cuda when ``pinned`` so copies run at full speed."""
        if self.kind == "cuda" and pinned:
            import cupyx

            buf = cupyx.zeros_pinned(shape, dtype)
            return buf
        return np.zeros(shape, dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        if self.kind == "cpu":
            return np.asarray(a)
        return self.xp.asnumpy(a)

    # -- copies -------------------------------------------------------------------
    def host_to_device(self, dst: Any, src: np.ndarray) -> None:
        if self.kind == "cpu":
            np.copyto(dst, src)
        elif self.kind == "cuda":
            dst.set(src, stream=self.xp.cuda.get_current_stream())
        else:
            dst.get_array().usm_data.copy_from_host(src.reshape(-1).view(np.uint8))

    def device_to_host(self, dst: np.ndarray, src: Any) -> None:
        if self.kind == "cpu":
            np.copyto(dst, src)
        elif self.kind == "cuda":
            src.get(stream=self.xp.cuda.get_current_stream(), out=dst)
        else:
            src.get_array().usm_data.copy_to_host(dst.reshape(-1).view(np.uint8))

    # -- random -------------------------------------------------------------------
    def rng(self, seed: int) -> Any:
        if self.kind == "cpu":
            return np.random.default_rng(seed)
        if self.kind == "cuda":
            with self._native:
                return self.xp.random.default_rng(seed)
        return self.xp.random.RandomState(seed, sycl_queue=self._native)

    def fill_random(self, rng: Any, out: Any, distribution: str) -> Any:
        """Fill ``out`` in place where the module allows it; return the array holding the values."""
        if self.kind in ("cpu", "cuda"):
            if distribution == "normal":
                return rng.standard_normal(out.shape, dtype=out.dtype, out=out)
            return rng.random(out.shape, dtype=out.dtype, out=out)
        # dpnp's RandomState has no ``out=``; it allocates on the kernel's queue.
        if distribution == "normal":
            return rng.standard_normal(out.shape).astype(out.dtype, copy=False)
        return rng.random_sample(out.shape).astype(out.dtype, copy=False)

    def scatter_add(self, y: Any, idx: Any, x: Any) -> None:
        """``y[idx] += x`` with repeated indices accumulated, on 1-D views."""
        if self.kind == "cpu":
            np.add.at(y, idx, x)
        elif self.kind == "cuda":
            import cupyx

            cupyx.scatter_add(y, idx, x)
        elif hasattr(self.xp.add, "at"):
            self.xp.add.at(y, idx, x)
        else:  # older dpnp: one histogram pass gives the same sums
            y += self.xp.bincount(idx, weights=x, minlength=y.size).astype(y.dtype, copy=False)

    # -- synchronisation and timing ------------------------------------------------
    def synchronize(self) -> None:
        if self.kind == "cuda":
            self.xp.cuda.get_current_stream().synchronize()
        elif self.kind == "xpu":
            self._native.wait()

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make this backend's device current (cupy allocates and launches on the current device)."""
        if self.kind == "cuda":
            with self._native:
                yield
        else:
            yield

    @contextmanager
    def timer(self) -> Iterator[Timer]:
        """Time a block: ``host_dt`` wall clock, ``device_dt`` after the device finished.

        Work queued before the block is drained first so it is not billed to the kernel.
        """
        t = Timer()
        if self.kind == "cpu":
            t0 = time.perf_counter()
            yield t
            dt = time.perf_counter() - t0
            t.result = KernelTiming(dt, dt)
        elif self.kind == "cuda":
            cp = self.xp
            with self._native:
                stream = cp.cuda.get_current_stream()
                stream.synchronize()
                start, end = cp.cuda.Event(), cp.cuda.Event()
                t0 = time.perf_counter()
                start.record(stream)
                yield t
                end.record(stream)
                end.synchronize()
                host_dt = time.perf_counter() - t0
                t.result = KernelTiming(host_dt, cp.cuda.get_elapsed_time(start, end) / 1e3)
        else:
            import dpctl

            queue = self._native
            queue.wait()
            sycl_timer = dpctl.SyclTimer(time_scale=1)
            t0 = time.perf_counter()
            with sycl_timer(queue):
                yield t
                queue.wait()
            host_dt = time.perf_counter() - t0
            t.result = KernelTiming(host_dt, float(sycl_timer.dt.device_dt))


def _split(device: Any, what: str) -> tuple[str, int]:
    if not isinstance(device, str):
        raise TypeError(
            f"{what} must be a str such as 'cpu' or 'cuda:0', not {type(device).__name__}"
        )
    kind, _, index = device.strip().lower().partition(":")
    if kind not in DEVICES:
        raise ValueError(
            f"unknown {what} {device!r}{did_you_mean(kind, DEVICES, cutoff=0.4)} "
            f"(known: {', '.join(DEVICES)})"
        )
    if index and not index.isdigit():
        raise ValueError(f"{what} index must be an integer, got {device!r}")
    if kind == "cpu" and index not in ("", "0"):
        raise ValueError(f"{what} 'cpu' takes no index, got {device!r}")
    return kind, int(index or 0)


def parse_device(device: str, *, override: bool = True) -> tuple[str, int]:
    """Split ``"cuda:1"`` into ``("cuda", 1)``; unknown names get close matches.

    With ``override`` (the default) ``$SIMAI_DEVICE`` replaces the device kind: ``cpu``
    sends everything to the host, ``cuda`` turns ``xpu:1`` into ``cuda:1``, and
    ``cuda:2`` pins every device to GPU 2.
    """
    kind, index = _split(device, "device")
    forced = os.environ.get(DEVICE_ENV, "").strip() if override else ""
    if forced:
        forced_kind, forced_index = _split(forced, f"{DEVICE_ENV} device")
        if forced_kind == "cpu":
            return "cpu", 0
        return forced_kind, forced_index if ":" in forced else index
    return kind, index


def check_device(device: str, *, override: bool = True) -> str:
    """The one device validator of every layer: the canonical ``"cpu"``, ``"cuda:N"`` or ``"xpu:N"``.

    A device given without an index keeps its bare name (``"cuda"``), so configs echo
    back what the user wrote. ``$SIMAI_DEVICE`` applies as in :func:`parse_device`.
    """
    kind, index = parse_device(device, override=override)
    if kind == "cpu":
        return "cpu"
    bare = ":" not in device and not (override and ":" in os.environ.get(DEVICE_ENV, ""))
    return kind if bare and index == 0 else f"{kind}:{index}"


def _cuda_device(cp: ModuleType, index: int) -> Any:
    """cupy's Device ``index`` after checking that a driver and that device exist.

    Without this, a machine with cupy but no GPU fails at the first allocation with
    cupy's "CUDA driver version is insufficient" or "no CUDA-capable device".
    """
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy raises CUDARuntimeError / CUDADriverError subclasses
        raise RuntimeError(
            f"device='cuda:{index}': no CUDA device/driver was found ({exc}). "
            "Run on a GPU node, or use device='cpu' (SIMAI_DEVICE=cpu for a whole run)"
        ) from exc
    if count == 0:
        raise RuntimeError(
            f"device='cuda:{index}': no CUDA device/driver was found (0 devices visible; "
            "check CUDA_VISIBLE_DEVICES), or use device='cpu'"
        )
    if index >= count:
        raise ValueError(
            f"device 'cuda:{index}' does not exist: {count} CUDA device(s) visible "
            f"(cuda:0..cuda:{count - 1}; CUDA_VISIBLE_DEVICES renumbers them)"
        )
    return cp.cuda.Device(index)


_lock = threading.Lock()


@functools.cache
def _backend(kind: str, index: int) -> Backend:
    if kind == "cpu":
        return Backend("cpu", "cpu", 0, np)
    if kind == "cuda":
        cp = require("cupy", "cuda", "device='cuda' (use the 'rocm' extra on AMD GPUs)")
        return Backend(f"cuda:{index}", "cuda", index, cp, _cuda_device(cp, index))
    dpnp = require("dpnp", "xpu", "device='xpu'")
    dpctl = require("dpctl", "xpu", "device='xpu'")
    gpus = dpctl.get_devices(device_type="gpu") or dpctl.get_devices()
    if index >= len(gpus):
        raise ValueError(f"device 'xpu:{index}' does not exist: dpctl sees {len(gpus)} device(s)")
    # A profiling-enabled queue lets dpctl.SyclTimer read device timestamps.
    queue = dpctl.SyclQueue(gpus[index], property="enable_profiling")
    return Backend(f"xpu:{index}", "xpu", index, dpnp, queue)


def get_backend(device: str = "cpu") -> Backend:
    """The (cached) backend for ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"xpu"``, ``"xpu:N"``.

    ``$SIMAI_DEVICE`` overrides ``device`` (see :func:`parse_device`).
    """
    kind, index = parse_device(device)
    with _lock:
        return _backend(kind, index)
