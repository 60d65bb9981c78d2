"""Copy kernels: host<->device and device<->device transfers of ``data_size`` elements.

On ``device="cpu"`` they run as host memory copies, so a workflow written for a GPU
still runs (and is timed) on a laptop.
"""

from __future__ import annotations

from typing import Any

from simai.kernels._base import BaseKernel, Call, seeded

__all__ = ["CopyDeviceToDevice", "CopyDeviceToHost", "CopyHostToDevice"]


class CopyHostToDevice(BaseKernel):
    """Host array -> device array (page-locked host memory on cuda unless ``pinned=False``)."""

    family = "copy"
    default_size = (32, 32, 32)
    dtype_kinds = "biufc"
    options = {"pinned": True}
    alloc_options = ("pinned",)

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        host = be.host_buffer(call.shape, call.dtype, call.options["pinned"])
        host[...] = seeded(call.shape, call.dtype, call.rank, 1)
        return {"host": host, "device": be.zeros(call.shape, call.dtype)}

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.backend.host_to_device(s["device"], s["host"])


class CopyDeviceToHost(BaseKernel):
    """Device array -> host array (page-locked host memory on cuda unless ``pinned=False``)."""

    family = "copy"
    default_size = (32, 32, 32)
    dtype_kinds = "biufc"
    options = {"pinned": True}
    alloc_options = ("pinned",)

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "device": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "host": be.host_buffer(call.shape, call.dtype, call.options["pinned"]),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.backend.device_to_host(s["host"], s["device"])


class CopyDeviceToDevice(BaseKernel):
    """Device array -> another array on the same device."""

    family = "copy"
    default_size = (32, 32, 32)
    dtype_kinds = "biufc"

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "src": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "dst": be.zeros(call.shape, call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.xp.copyto(s["dst"], s["src"])
