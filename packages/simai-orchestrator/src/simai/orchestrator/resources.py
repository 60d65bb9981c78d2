"""CPU/GPU slot accounting: a component holds its slots from dispatch to completion.

Components that run here hold this node's slots; remote components inside an allocation
hold cores and GPUs of the allocation's nodes (`simai.orchestrator.placement.NodePool`).
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

from simai.orchestrator.allocation import Allocation
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import SystemConfig, detect_gpu_visibility_var
from simai.orchestrator.placement import NodePool, Placement

__all__ = ["Allotment", "ResourcePool"]


@dataclass(frozen=True)
class Allotment:
    cpu_slots: tuple[int, ...] = ()
    gpus: tuple[str, ...] = ()
    pin: tuple[int, ...] | None = None  # real CPU ids to pin to, when slots map to real CPUs
    placement: Placement | None = None  # nodes of the allocation (launched components)

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.placement.hosts if self.placement is not None else ()

    def env(self, var: str) -> dict[str, str]:
        if not self.gpus:
            return {}
        env = {var: ",".join(self.gpus)}
        if self.placement is not None and self.placement.gpu_groups:
            # Each local rank narrows the variable to its own GPUs (launchers.bind_rank).
            from simai.orchestrator.launchers import GPU_MAP_VAR, GPU_VAR_VAR, gpu_map_value

            env[GPU_MAP_VAR] = gpu_map_value(self.placement.gpu_groups)
            env[GPU_VAR_VAR] = var
        return env


EMPTY = Allotment()


class ResourcePool:
    """Free CPU slots and GPU ids. Not thread-safe: the scheduler calls it under its lock."""

    def __init__(self, system: SystemConfig, allocation: Allocation | None = None):
        self.system = system
        self._allocation = allocation
        self._nodes: NodePool | None = None
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

    @property
    def allocation(self) -> Allocation:
        # Read on first use, so a stale PBS_NODEFILE only troubles runs that launch.
        if self._allocation is None:
            self._allocation = Allocation.detect()
        return self._allocation

    def places(self, comp: WorkflowComponent) -> bool:
        """Whether the component runs on the allocation's nodes (not on this node's slots)."""
        return comp.type == "remote" and (bool(comp.nodes) or bool(self.allocation))

    @property
    def nodes(self) -> NodePool | None:
        if self._nodes is None and self.allocation:
            self._nodes = NodePool(self.allocation, self.system)
        return self._nodes

    def check(self, comp: WorkflowComponent, local_slots: bool = True) -> None:
        """Raise ValueError at submit time when the request can never be met."""
        if not local_slots and comp.type != "remote":
            return  # placed by the engine on its own workers
        if not local_slots and comp.type == "remote" and self.nodes is not None:
            self.nodes.check(comp)
            return
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
        if not local_slots and comp.type != "remote":
            return EMPTY  # placed by the engine on its own workers
        if not local_slots and comp.type == "remote" and self.nodes is not None:
            placed = self.nodes.try_place(comp)
            if placed is None:
                return None
            pin = placed.cpus if self.system.pin_cpus and self.system.cpus is not None else None
            return Allotment((), placed.gpus, pin, placed)
        if not local_slots and comp.type == "remote" and comp.nodes:
            # Named nodes outside any allocation: the user places it; nothing to count.
            return Allotment(placement=Placement(tuple(comp.nodes), (), ()))
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
        if allot.placement is not None:
            if self._nodes is not None:
                self._nodes.release(allot.placement)
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
        """Free local CPU slots and GPUs; (1, 0) at least while allocation nodes have cores."""
        free = len(self._free_cpus), len(self._free_gpus)
        if free == (0, 0) and self._nodes is not None and self._nodes.any_free:
            return (1, 0)
        return free
