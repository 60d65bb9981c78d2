"""``dragon``: a process pool on the DragonHPC runtime (run the program with ``dragon``)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator._runner import TaskSpec
from simai.orchestrator.executors._missing import require
from simai.orchestrator.executors.process import _call_pickled


def in_dragon_runtime() -> bool:
    return any(k in os.environ for k in ("DRAGON_DEFAULT_PD", "DRAGON_INF_PD", "DRAGON_MODE"))


class DragonExecutor(Executor):
    """``concurrent.futures`` over Dragon's multiprocessing Pool (dragon.native.Pool)."""

    def __init__(self, processes: int):
        import multiprocessing

        import dragon  # noqa: F401  (registers the "dragon" start method)

        # Dragon installs its multiprocessing replacements when it becomes the start
        # method, as every program under `dragon` does first.
        if multiprocessing.get_start_method(allow_none=True) != "dragon":
            multiprocessing.set_start_method("dragon", force=True)
        self._pool = multiprocessing.Pool(processes)
        self._lock = threading.Lock()
        self._closed = False
        self._hosts: dict[str, tuple[frozenset[int], frozenset[int]]] | None = None
        # One single-process native Pool per placed task, with that task's Policy.
        self._placed: set = set()

    def places_tasks(self) -> bool:
        """`PlacesTasks`: the engine's workers are the slots of local components."""
        return True

    def submit(self, fn, /, *args, **kwargs) -> Future:
        import cloudpickle

        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        policy = None
        spec = args[0] if args and isinstance(args[0], TaskSpec) else None
        if spec is not None and spec.placement:
            policy = self._policy(spec.name, spec.placement)  # bad requests fail at submit
        out: Future = Future()
        out.set_running_or_notify_cancel()

        def ok(value):
            if not out.done():
                out.set_result(value)

        def err(exc):
            if not out.done():
                out.set_exception(exc)

        payload = (cloudpickle.dumps((fn, args, kwargs)),)
        if policy is None:
            self._pool.apply_async(_call_pickled, payload, callback=ok, error_callback=err)
            return out
        from dragon.native.pool import Pool

        pool = Pool(processes=1, policy=policy)
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError("cannot submit after shutdown")
                self._placed.add(pool)
            pool.apply_async(_call_pickled, payload, callback=ok, error_callback=err)
        except BaseException:
            with self._lock:
                self._placed.discard(pool)
            pool.terminate()
            pool.join()
            raise
        threading.Thread(target=self._retire, args=(pool, out), daemon=True).start()
        return out

    def _retire(self, pool, out: Future) -> None:
        wait_futures([out])
        with self._lock:
            if pool not in self._placed:
                return  # shutdown took it
            self._placed.discard(pool)
        pool.close()
        pool.join()

    def _known_hosts(self) -> dict[str, tuple[frozenset[int], frozenset[int]]]:
        """Each Dragon host name with its CPUs and GPUs, read once from the runtime."""
        if self._hosts is None:
            from dragon.native.machine import Node, System

            nodes = [Node(h) for h in System().nodes]
            self._hosts = {
                n.hostname: (frozenset(n.cpus or ()), frozenset(n.gpus or ())) for n in nodes
            }
        return self._hosts

    def _policy(self, name: str, placement: dict):
        """The Dragon Policy for a component's ``nodes``/``cpu_affinity``/``gpu_affinity``."""
        from dragon.infrastructure.policy import Policy

        kw: dict = {}
        known = self._known_hosts()
        nodes = placement.get("nodes") or []
        if len(nodes) > 1:
            raise ValueError(
                f"component {name!r}: a local component runs in one Dragon process on one "
                f"host; nodes={nodes} names {len(nodes)} (give one, or use type='remote')"
            )
        if nodes:
            if nodes[0] not in known:
                raise ValueError(
                    f"component {name!r}: nodes={nodes}: host {nodes[0]!r} is not in the "
                    f"Dragon runtime; its hosts are {sorted(known)}"
                )
            kw.update(placement=Policy.Placement.HOST_NAME, host_name=nodes[0])
        # Dragon runs a process unpinned when asked for a CPU or GPU its node lacks, so
        # a request no candidate host can meet is refused here.
        hosts = nodes or sorted(known)
        cpus = [int(c) for c in placement.get("cpu_affinity") or []]
        for host in hosts:
            missing = sorted(set(cpus) - known[host][0])
            if missing:
                raise ValueError(
                    f"component {name!r}: cpu_affinity {missing} not on Dragon host {host!r} "
                    f"(its CPUs: {sorted(known[host][0])})"
                )
        if cpus:
            kw["cpu_affinity"] = cpus
        gpus = [str(g) for g in placement.get("gpu_affinity") or []]
        tiles = [g for g in gpus if not g.isdigit()]
        if tiles:
            raise ValueError(
                f"component {name!r}: gpu_affinity {tiles}: Dragon binds whole GPUs by "
                "index (0, 1, ...); tile ids like '0.1' are for MPI launchers"
            )
        if gpus:
            kw["gpu_affinity"] = [int(g) for g in gpus]
            for host in hosts:
                missing = sorted(set(kw["gpu_affinity"]) - known[host][1])
                if missing:
                    raise ValueError(
                        f"component {name!r}: gpu_affinity {missing} not on Dragon host "
                        f"{host!r} (its GPUs: {sorted(known[host][1])})"
                    )
        return Policy(**kw)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._lock:
            placed, self._placed = list(self._placed), set()
        gentle = wait and not cancel_futures
        for pool in [self._pool, *placed]:
            if gentle:
                pool.close()
            else:
                pool.terminate()
        for pool in [self._pool, *placed]:
            pool.join()


class DragonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "dragon"
    max_workers: int = Field(default=2, ge=1)

    def get_executor(self) -> DragonExecutor:
        require("dragon", "dragon", "dragon")
        if not in_dragon_runtime():
            raise RuntimeError(
                "the dragon executor needs the Dragon runtime: start the program with "
                "`dragon your_script.py` (pip install 'simai-orchestrator[dragon]')"
            )
        return DragonExecutor(self.max_workers)
