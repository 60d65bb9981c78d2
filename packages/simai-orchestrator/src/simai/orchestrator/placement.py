"""Per-node bookkeeping: which cores and GPUs of which allocation nodes a component holds.

`SystemConfig` describes one node; `NodePool` keeps one copy of it per node of the
`Allocation`. A component launched by simai (``type="remote"``) asks for ``nnodes`` nodes
(or names them in ``nodes``) and, on each, ``ppn`` cores (or exactly ``cpu_affinity``) and
``ppn * num_gpus_per_process`` GPUs (or exactly ``gpu_affinity``). Concurrent components
get disjoint cores and GPUs; components whose cores are disjoint may share a node (a
simulation and a trainer co-located with different ``cpu_affinity``). The same core and
GPU ids are taken on every node of a component, because launchers bind with one list for
all nodes. Not thread-safe: the scheduler calls it under its lock.
"""

from __future__ import annotations

import graphlib
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from simai.orchestrator.allocation import Allocation
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import SystemConfig

__all__ = ["NodePool", "Placement", "plan_launches"]


@dataclass(frozen=True)
class Placement:
    """Where a component runs: its hosts, and the same core and GPU ids on each of them."""

    hosts: tuple[str, ...]
    cpus: tuple[int, ...]
    gpus: tuple[str, ...]
    gpu_groups: tuple[tuple[str, ...], ...] = ()  # per local rank

    def as_dict(self) -> dict:
        return {
            "nodes": list(self.hosts),
            "cores": list(self.cpus),
            "gpus": list(self.gpus),
            "gpus_per_rank": [list(g) for g in self.gpu_groups],
        }


class NodePool:
    """Free cores and GPUs per node of an allocation."""

    def __init__(self, allocation: Allocation, system: SystemConfig):
        if not allocation:
            raise ValueError("a NodePool needs an allocation with at least one node")
        self.allocation = allocation
        self.system = system
        self.node_cpus: tuple[int, ...] = tuple(
            system.cpus if system.cpus is not None else range(system.ncpus or 1)
        )
        self.node_gpus: tuple[str, ...] = tuple(system.gpus or ())
        self._cpu_rank = {c: i for i, c in enumerate(self.node_cpus)}
        self._gpu_rank = {g: i for i, g in enumerate(self.node_gpus)}
        self._index = {n: i for i, n in enumerate(allocation.nodes)}
        self._free_cpus = {n: set(self.node_cpus) for n in allocation.nodes}
        self._free_gpus = {n: set(self.node_gpus) for n in allocation.nodes}

    # -- what a component asks for, per node --------------------------------------------
    @staticmethod
    def _per_node(comp: WorkflowComponent) -> tuple[int, int]:
        cores = len(comp.cpu_affinity) if comp.cpu_affinity else comp.ppn
        gpus = len(comp.gpu_affinity) if comp.gpu_affinity else comp.ppn * comp.num_gpus_per_process
        return cores, gpus

    def check(self, comp: WorkflowComponent) -> None:
        """Raise ValueError naming what is missing when the request can never be met."""
        where = f"the allocation ({self.allocation.source})"
        nnodes = comp.nnodes
        if comp.nodes:
            unknown = [n for n in comp.nodes if n not in self._index]
            if unknown:
                raise ValueError(
                    f"component {comp.name!r}: nodes {unknown} are not in {where}, "
                    f"which has {_preview(self.allocation.nodes)}"
                )
            if len(set(comp.nodes)) != len(comp.nodes):
                raise ValueError(f"component {comp.name!r}: nodes lists a node twice")
        if nnodes > len(self.allocation):
            raise ValueError(
                f"component {comp.name!r} asks for {nnodes} nodes (nnodes); "
                f"{where} has {len(self.allocation)}"
            )
        cores, gpus = self._per_node(comp)
        if cores > len(self.node_cpus):
            raise ValueError(
                f"component {comp.name!r} asks for {cores} cores per node "
                f"({'cpu_affinity' if comp.cpu_affinity else 'ppn'}); a node has "
                f"{len(self.node_cpus)} (SystemConfig.ncpus describes one node)"
            )
        if gpus > len(self.node_gpus):
            raise ValueError(
                f"component {comp.name!r} asks for {gpus} GPUs per node "
                f"({'gpu_affinity' if comp.gpu_affinity else 'ppn * num_gpus_per_process'}); "
                f"a node has {len(self.node_gpus)} (SystemConfig.ngpus describes one node)"
            )
        if comp.cpu_affinity:
            unknown = sorted(set(comp.cpu_affinity) - set(self.node_cpus))
            if unknown:
                raise ValueError(
                    f"component {comp.name!r}: cpu_affinity {unknown} not among a node's cores "
                    f"(SystemConfig.cpus: {_preview(self.node_cpus)})"
                )
        if comp.gpu_affinity:
            unknown = sorted(set(comp.gpu_affinity) - set(self.node_gpus))
            if unknown:
                raise ValueError(
                    f"component {comp.name!r}: gpu_affinity {unknown} not among a node's GPUs "
                    f"(SystemConfig.gpus: {_preview(self.node_gpus)})"
                )

    # -- taking and giving back ---------------------------------------------------------
    def try_place(self, comp: WorkflowComponent) -> Placement | None:
        """Take what the component needs on its nodes, or return None (it must wait)."""
        ncores, ngpus = self._per_node(comp)
        want_cpus = set(comp.cpu_affinity) if comp.cpu_affinity else None
        want_gpus = set(comp.gpu_affinity) if comp.gpu_affinity else None
        nnodes = comp.nnodes
        candidates = comp.nodes or self.allocation.nodes
        chosen: list[str] = []
        common_cpus: set[int] | None = None
        common_gpus: set[str] | None = None
        for node in candidates:
            fc, fg = self._free_cpus[node], self._free_gpus[node]
            if len(fc) < ncores or len(fg) < ngpus:
                if comp.nodes:
                    return None
                continue
            cc = (
                (want_cpus if want_cpus <= fc else None)
                if want_cpus
                else (fc if common_cpus is None else common_cpus & fc)
            )
            cg = (
                (want_gpus if want_gpus <= fg else None)
                if want_gpus
                else (fg if common_gpus is None else common_gpus & fg)
            )
            if cc is None or cg is None or len(cc) < ncores or len(cg) < ngpus:
                if comp.nodes:
                    return None
                continue
            chosen.append(node)
            common_cpus, common_gpus = cc, cg
            if len(chosen) == nnodes:
                break
        if len(chosen) < nnodes:
            return None
        cpus = tuple(sorted(common_cpus or (), key=self._cpu_rank.__getitem__)[:ncores])
        gpus = tuple(sorted(common_gpus or (), key=self._gpu_rank.__getitem__)[:ngpus])
        if want_cpus:
            cpus = tuple(comp.cpu_affinity)
        if want_gpus:
            gpus = tuple(comp.gpu_affinity)
        for node in chosen:
            self._free_cpus[node].difference_update(cpus)
            self._free_gpus[node].difference_update(gpus)
        return Placement(tuple(chosen), cpus, gpus, _gpu_groups(gpus, comp.ppn))

    def release(self, placement: Placement) -> None:
        for node in placement.hosts:
            if node not in self._free_cpus:
                continue  # named outside this allocation: never counted
            self._free_cpus[node].update(placement.cpus)
            self._free_gpus[node].update(placement.gpus)

    def free_cores(self, node: str) -> int:
        return len(self._free_cpus[node])

    @property
    def any_free(self) -> bool:
        return any(self._free_cpus.values())


def _gpu_groups(gpus: tuple[str, ...], ppn: int) -> tuple[tuple[str, ...], ...]:
    """Split a node's GPUs among its local ranks (equal blocks, else one each, round robin)."""
    if not gpus:
        return ()
    if len(gpus) >= ppn and len(gpus) % ppn == 0:
        k = len(gpus) // ppn
        return tuple(gpus[i * k : (i + 1) * k] for i in range(ppn))
    return tuple((g,) for g in gpus)


def _preview(items, n: int = 6) -> str:
    items = list(items)
    shown = ", ".join(map(str, items[:n]))
    return f"[{shown}{', ...' if len(items) > n else ''}] ({len(items)})"


PAYLOAD = "<payload.pkl>"  # the callable's pickle, written into a private directory at launch


def plan_launches(
    components: Iterable[WorkflowComponent],
    system: SystemConfig,
    allocation: Allocation | None = None,
) -> dict:
    """Where every component would run and the exact command that would start it.

    Nothing is started and no scheduler is needed. Components are placed in dependency
    order into *waves*: the components of one wave may run at the same time and never
    share a core or a GPU; a component goes into a later wave when it depends on one of the
    current wave or does not fit beside it. ``type="local"`` components are placed by
    their executor (listed, without nodes). Raises ValueError, naming what is missing,
    for a request that can never fit.
    """
    from simai.orchestrator.config import detect_gpu_visibility_var
    from simai.orchestrator.launchers import (
        GPU_MAP_VAR,
        GPU_VAR_VAR,
        LaunchRequest,
        get_launcher,
    )

    comps = {c.name: c for c in components}
    graph = {n: [d for d in c.dependencies if d in comps] for n, c in comps.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())
    allocation = Allocation.detect() if allocation is None else allocation
    pool = NodePool(allocation, system) if allocation else None
    gpu_var = system.gpu_visibility_var or detect_gpu_visibility_var()
    launchers: dict = {}
    wave_of: dict[str, int] = {}
    held: list[Placement] = []
    current = 0
    entries = []
    for name in order:
        comp = comps[name]
        earliest = max((wave_of[d] + 1 for d in graph[name]), default=0)
        entry: dict = {"name": name, "type": comp.type, "dependencies": list(comp.dependencies)}
        if comp.type != "remote":
            wave_of[name] = earliest
            entry.update(wave=earliest, placed_by="executor")
            entries.append(entry)
            continue
        if pool is None:
            placed = Placement(tuple(comp.nodes or ()), tuple(comp.cpu_affinity or ()), ())
        else:
            pool.check(comp)
            if earliest > current:
                current = earliest
                for p in held:
                    pool.release(p)
                held.clear()
            placed = pool.try_place(comp)
            if placed is None:  # waits for the current wave to end
                current += 1
                for p in held:
                    pool.release(p)
                held.clear()
                placed = pool.try_place(comp)
            held.append(placed)
        wave_of[name] = current
        lname = comp.launcher or system.launcher
        if lname not in launchers:
            launchers[lname] = get_launcher(lname)
        launcher = launchers[lname]
        env_names = list(comp.env_vars)
        if placed.gpus:
            env_names.append(gpu_var)
            if placed.gpu_groups:
                env_names += [GPU_MAP_VAR, GPU_VAR_VAR]
        if callable(comp.executable):
            argv = (sys.executable, "-m", "simai.orchestrator._mpi_entry", PAYLOAD)
        else:
            argv = tuple(shlex.split(comp.executable))
        cmd = launcher.command(
            LaunchRequest(
                argv=argv,
                nprocs=comp.nprocs,
                ppn=comp.ppn,
                hosts=placed.hosts,
                cpus=placed.cpus if system.pin_cpus and placed.cpus else None,
                env_names=tuple(env_names),
                extra_args=tuple(comp.launcher_args),
            )
        )
        entry.update(
            wave=current,
            launcher=launcher.name,
            nprocs=comp.nprocs,
            ppn=comp.ppn,
            **placed.as_dict(),
            command=cmd,
            command_line=shlex.join(cmd),
        )
        entries.append(entry)
    return {
        "allocation": {"source": allocation.source, "nodes": len(allocation)},
        "node": {"cores": len(system.cpus or ()) or system.ncpus, "gpus": list(system.gpus or ())},
        "waves": (max(wave_of.values()) + 1) if wave_of else 0,
        "components": entries,
    }
