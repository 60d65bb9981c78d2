"""Copy kernels: host<->device and device<->device transfers of ``data_size`` elements.

On ``device="cpu"`` they run as host memory copies, so a workflow written for a GPU
still runs (and is timed) on a laptop.
"""

from __future__ import annotations

from typing import Any, ClassVar

from simai.kernels._base import BaseKernel, Call, seeded

__all__ = ["CopyDeviceToDevice", "CopyDeviceToHost", "CopyHostToDevice"]


class _Copy(BaseKernel):
    family = "copy"
    default_size = (32, 32, 32)
    dtype_kinds = "biufc"


class _HostDeviceCopy(_Copy):
    """A copy between a host buffer and a device array; ``pinned`` asks for page-locked host
    memory on cuda, without which copies run at a fraction of the link's speed."""

    options = {"pinned": True}
    alloc_options = ("pinned",)
    filled: ClassVar[str]  # "host" or "device": the side that holds the data before a call

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        data = seeded(call.shape, call.dtype, call.rank, 1)
        host = be.host_buffer(call.shape, call.dtype, call.options["pinned"])
        if self.filled == "host":
            host[...] = data
            return {"host": host, "device": be.zeros(call.shape, call.dtype)}
        return {"host": host, "device": be.asarray(data)}


class CopyHostToDevice(_HostDeviceCopy):
    """Host array -> device array (page-locked host memory on cuda unless ``pinned=False``)."""

    filled = "host"

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.backend.host_to_device(s["device"], s["host"])


class CopyDeviceToHost(_HostDeviceCopy):
    """Device array -> host array (page-locked host memory on cuda unless ``pinned=False``)."""

    filled = "device"

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.backend.device_to_host(s["host"], s["device"])


class CopyDeviceToDevice(_Copy):
    """Device array -> another array on the same device."""

    def setup(self, call: Call) -> dict[str, Any]:
        be = call.backend
        return {
            "src": be.asarray(seeded(call.shape, call.dtype, call.rank, 1)),
            "dst": be.zeros(call.shape, call.dtype),
        }

    def run(self, call: Call, s: dict[str, Any]) -> None:
        call.xp.copyto(s["dst"], s["src"])
