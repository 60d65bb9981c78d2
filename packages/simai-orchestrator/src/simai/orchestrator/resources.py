"""CPU/GPU slot accounting: a component holds its slots from dispatch to completion."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import SystemConfig, detect_gpu_visibility_var

__all__ = ["Allotment", "ResourcePool"]


@dataclass(frozen=True)
class Allotment:
    cpu_slots: tuple[int, ...] = ()
    gpus: tuple[str, ...] = ()
    pin: tuple[int, ...] | None = None  # real CPU ids to pin to, when slots map to real CPUs

    def env(self, var: str) -> dict[str, str]:
        return {var: ",".join(self.gpus)} if self.gpus else {}


EMPTY = Allotment()


class ResourcePool:
    """Free CPU slots and GPU ids. Not thread-safe: the scheduler calls it under its lock."""

    def __init__(self, system: SystemConfig):
        self.system = system
        self.ncpus = system.ncpus or 1
        self._cpu_ids = list(system.cpus) if system.cpus is not None else None
        self._free_cpus = list(range(self.ncpus))  # slot indices
        self._free_gpus = list(system.gpus or [])
        self._gpu_order = {g: i for i, g in enumerate(system.gpus or [])}
        self._gpu_var = system.gpu_visibility_var

    @property
    def gpu_var(self) -> str:
        # Detected on first use: it looks for vendor tools on PATH (milliseconds).
        if self._gpu_var is None:
            self._gpu_var = detect_gpu_visibility_var()
        return self._gpu_var

    def check(self, comp: WorkflowComponent, local_slots: bool = True) -> None:
        """Raise ValueError at submit time when the request can never be met."""
        if (
            comp.cpu_affinity is None
            and comp.gpu_affinity is None
            and comp.num_gpus_per_process == 0
            and comp.nnodes * comp.ppn <= self.ncpus
        ):
            return  # the common request (one slot, no GPU): nothing can be wrong with it
        sysname = self.system.name
        if local_slots and comp.cpus_requested > self.ncpus:
            raise ValueError(
                f"component {comp.name!r} asks for {comp.cpus_requested} CPUs; "
                f"system {sysname!r} has {self.ncpus} (SystemConfig.ncpus)"
            )
        if comp.gpus_requested > len(self.system.gpus or []):
            raise ValueError(
                f"component {comp.name!r} asks for {comp.gpus_requested} GPUs; "
                f"system {sysname!r} has {len(self.system.gpus or [])} (SystemConfig.ngpus)"
            )
        if comp.cpu_affinity:
            if self._cpu_ids is None:
                raise ValueError(
                    f"component {comp.name!r} sets cpu_affinity but system {sysname!r} has "
                    "logical CPU slots only (ncpus exceeds the CPUs present); set SystemConfig.cpus"
                )
            unknown = sorted(set(comp.cpu_affinity) - set(self._cpu_ids))
            if unknown:
                raise ValueError(
                    f"component {comp.name!r}: cpu_affinity {unknown} not in SystemConfig.cpus"
                )
        if comp.gpu_affinity:
            unknown = sorted(set(comp.gpu_affinity) - set(self.system.gpus or []))
            if unknown:
                raise ValueError(
                    f"component {comp.name!r}: gpu_affinity {unknown} not in SystemConfig.gpus"
                )

    def try_acquire(self, comp: WorkflowComponent, local_slots: bool = True) -> Allotment | None:
        if (
            local_slots
            and comp.nnodes == 1
            and comp.ppn == 1
            and comp.cpu_affinity is None
            and comp.gpu_affinity is None
            and comp.num_gpus_per_process == 0
        ):
            # The common request, one CPU slot and no GPU: no set arithmetic, no sorting.
            if not self._free_cpus:
                return None
            slot = self._free_cpus.pop(0)
            pin = None
            if self._cpu_ids is not None and self.system.pin_cpus:
                pin = (self._cpu_ids[slot],)
            return Allotment((slot,), (), pin)
        ncpu = comp.cpus_requested if local_slots else 0
        ngpu = comp.gpus_requested
        if ncpu == 0 and ngpu == 0:
            return EMPTY
        if comp.cpu_affinity:
            slots = [self._cpu_ids.index(c) for c in comp.cpu_affinity]  # type: ignore[union-attr]
            if not set(slots) <= set(self._free_cpus):
                return None
        elif ncpu > len(self._free_cpus):
            return None
        else:
            slots = self._free_cpus[:ncpu]
        if comp.gpu_affinity:
            gpus = list(comp.gpu_affinity)
            if not set(gpus) <= set(self._free_gpus):
                return None
        elif ngpu > len(self._free_gpus):
            return None
        else:
            gpus = self._free_gpus[:ngpu]
        # Both fit: take them (free lists stay sorted, lowest ids first).
        if comp.cpu_affinity:
            taken = set(slots)
            self._free_cpus = [s for s in self._free_cpus if s not in taken]
        else:
            del self._free_cpus[:ncpu]
        if comp.gpu_affinity:
            self._free_gpus = [g for g in self._free_gpus if g not in gpus]
        else:
            del self._free_gpus[:ngpu]
        pin = None
        if self._cpu_ids is not None and self.system.pin_cpus and slots:
            pin = tuple(self._cpu_ids[s] for s in slots)
        return Allotment(tuple(slots), tuple(gpus), pin)

    def release(self, allot: Allotment) -> None:
        if allot is EMPTY:
            return
        if len(allot.cpu_slots) == 1 and not allot.gpus:
            insort(self._free_cpus, allot.cpu_slots[0])
            return
        if allot.cpu_slots:
            self._free_cpus.extend(allot.cpu_slots)
            self._free_cpus.sort()
        if allot.gpus:
            self._free_gpus.extend(allot.gpus)
            self._free_gpus.sort(key=self._gpu_order.__getitem__)

    @property
    def free(self) -> tuple[int, int]:
        return len(self._free_cpus), len(self._free_gpus)
