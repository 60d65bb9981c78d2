"""The dependency graph, written once above every executor.

One path from "ready" to the executor: when a component's last dependency succeeds (or
at submit when it has none) and its resources are free, ``executor.submit(run_task,
spec)`` is called and one completion callback settles it. No thread sleeps or polls.
Completed components shrink to a `ComponentRecord`; everything else about them is
dropped.
"""

from __future__ import annotations

import difflib
import enum
import graphlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Executor, Future
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from simai.orchestrator._otel import telemetry_env, tracing_enabled
from simai.orchestrator._runner import Outcome, TaskSpec, run_task
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import SystemConfig
from simai.orchestrator.errors import (
    ComponentError,
    ComponentTimeout,
    DependencyFailed,
    OrchestratorStopped,
)
from simai.orchestrator.protocols import CancelsRunning, PlacesTasks
from simai.orchestrator.resources import Allotment, ResourcePool

__all__ = ["ComponentRecord", "RunReport", "Scheduler", "Status"]

log = logging.getLogger("simai.orchestrator")


class Status(str, enum.Enum):
    """A component's state. A ``str``: ``record.status == "succeeded"`` keeps working."""

    PENDING = "pending"  # waiting for dependencies or resources
    RUNNING = "running"  # handed to the executor
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # never ran: the orchestrator stopped or was interrupted first
    INTERRUPTED = "interrupted"  # was running when the orchestrator was interrupted

    # JSON, f-strings and logs show the value, on every Python version.
    __str__ = str.__str__
    __format__ = str.__format__

    @property
    def finished(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)


@dataclass(slots=True)
class ComponentRecord:
    """What happened to one component. Times are ``time.time()`` seconds (None until known).

    ``started``/``ended`` are measured inside the worker for successful runs.
    ``root_cause`` names the component whose failure made this one fail (itself when it
    failed on its own).
    """

    name: str
    status: Status = Status.PENDING
    submitted: float = 0.0
    ready: float | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int = 0
    error: str | None = None
    error_type: str | None = None
    root_cause: str | None = None
    result: Any = None
    executor: str = ""
    type: str = "local"
    dependencies: tuple[str, ...] = ()
    cpus: tuple[int, ...] | None = None
    gpus: tuple[str, ...] = ()

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def done(self) -> bool:
        return self.status.finished

    def as_dict(self, include_result: bool = False) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        d["duration"] = self.duration
        if not include_result:
            d.pop("result")
        return d


@dataclass
class RunReport:
    """What `Orchestrator.wait` returns: every record, and whether all finished / succeeded."""

    records: dict[str, ComponentRecord] = field(default_factory=dict)
    done: bool = True

    @property
    def ok(self) -> bool:
        return self.done and all(r.status == Status.SUCCEEDED for r in self.records.values())

    @property
    def failed(self) -> list[str]:
        bad = (Status.FAILED, Status.CANCELLED, Status.INTERRUPTED)
        return [n for n, r in self.records.items() if r.status in bad]

    @property
    def not_done(self) -> list[str]:
        return [n for n, r in self.records.items() if not r.done]

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.records.values():
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        lines = [", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no components"]
        for n in self.failed:
            r = self.records[n]
            lines.append(f"  {n}: {r.status} - {r.error}")
        return "\n".join(lines)


class _Node:
    __slots__ = ("allot", "attempt", "comp", "dependents", "future", "inner", "record", "waiting")

    def __init__(self, comp: WorkflowComponent, record: ComponentRecord):
        self.comp = comp
        self.record = record
        self.future: Future = Future()
        self.dependents: list[_Node] = []
        self.waiting = 0
        self.attempt = 0
        self.allot: Allotment | None = None
        self.inner: Future | None = None  # the executor's Future of the current attempt


class Scheduler:
    """Dependency tracking, resource gating, retries and timeouts over one Executor."""

    def __init__(
        self, executor: Executor, executor_name: str, system: SystemConfig, profile: bool = False
    ):
        self.executor = executor
        self.executor_name = executor_name
        self.system = system
        self.profile = profile
        # Executor Futures of attempts that ran past their timeout: already failed here,
        # but the engine may still be running them (a thread cannot be stopped).
        self._overdue: list[Future] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._live: dict[str, _Node] = {}
        self._records: dict[str, ComponentRecord] = {}
        self._resource_queue: deque[_Node] = deque()
        self._pool = ResourcePool(system)
        # An engine that places tasks on its own workers: local components take no driver slots.
        self._engine_places = isinstance(executor, PlacesTasks) and executor.places_tasks()
        self._pid = os.getpid()
        self._deadlines = _Deadlines(self._on_deadline)
        self._stopped = False
        self._interrupted = False

    # -- submission ------------------------------------------------------------------
    def submit(self, comp: WorkflowComponent) -> Future:
        return self.submit_many([comp])[0]

    def submit_many(self, comps: list[WorkflowComponent]) -> list[Future]:
        """Submit components that may depend on each other in any order (cycles rejected)."""
        comps = [self._coerce(c) for c in comps]
        order = self._check_batch(comps)
        to_fail: list[tuple[_Node, BaseException]] = []
        to_launch: list[tuple[_Node, int]] = []
        futures: dict[str, Future] = {}
        now = time.time()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the orchestrator is stopped; start a new one to submit")
            self._check_known(comps)
            for comp in order:
                node = _Node(
                    comp,
                    ComponentRecord(
                        comp.name,
                        submitted=now,
                        executor=self.executor_name,
                        type=comp.type,
                        dependencies=tuple(comp.dependencies),
                    ),
                )
                failed_dep = None
                for dep in comp.dependencies:
                    live = self._live.get(dep)
                    if live is not None:
                        live.dependents.append(node)
                        node.waiting += 1
                    elif failed_dep is None and self._records[dep].status != Status.SUCCEEDED:
                        failed_dep = self._records[dep]
                self._live[comp.name] = node
                self._records[comp.name] = node.record
                futures[comp.name] = node.future
                if failed_dep is not None:
                    to_fail.append((node, self._dep_error(comp.name, failed_dep)))
                elif node.waiting == 0 and (attempt := self._ready_locked(node, now)):
                    to_launch.append((node, attempt))
        for node, exc in to_fail:
            self._finish(node, Status.FAILED, error=exc)
        for node, attempt in to_launch:
            self._launch(node, attempt)
        return [futures[c.name] for c in comps]

    @staticmethod
    def _coerce(comp: Any) -> WorkflowComponent:
        if isinstance(comp, WorkflowComponent):
            return comp
        if isinstance(comp, dict):
            return WorkflowComponent(**comp)
        raise TypeError(f"submit() takes a WorkflowComponent, not {type(comp).__name__}")

    def _check_batch(self, comps: list[WorkflowComponent]) -> list[WorkflowComponent]:
        """Resource requests, unique names, and dependencies first (the one graph check)."""
        for c in comps:
            self._pool.check(c, local_slots=self._local_slots(c))
        if len(comps) == 1:
            return comps
        by_name = {c.name: c for c in comps}
        if len(by_name) != len(comps):
            names = [c.name for c in comps]
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"component names must be unique; repeated: {dup}")
        graph = {c.name: [d for d in c.dependencies if d in by_name] for c in comps}
        try:
            return [by_name[n] for n in graphlib.TopologicalSorter(graph).static_order()]
        except graphlib.CycleError as exc:
            raise ValueError(f"dependency cycle: {' -> '.join(exc.args[1])}") from None

    def _check_known(self, comps: list[WorkflowComponent]) -> None:
        batch = {c.name for c in comps}
        for c in comps:
            if c.name in self._records:
                raise ValueError(f"a component named {c.name!r} was already submitted")
            for dep in c.dependencies:
                if dep not in self._records and dep not in batch:
                    known = list(self._records) + list(batch)
                    close = difflib.get_close_matches(dep, known, n=3)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(
                        f"component {c.name!r} depends on unknown component {dep!r}{hint} "
                        "(submit dependencies first, or together with submit_many)"
                    )

    def _local_slots(self, comp: WorkflowComponent) -> bool:
        # Launched components are placed on the allocation's nodes, not on this node's
        # slots; local components on an engine that places tasks take the engine's workers.
        if comp.type != "remote" and self._engine_places:
            return False
        return not self._pool.places(comp)

    def _engine_placement(self, comp: WorkflowComponent) -> dict:
        if comp.type == "remote" or not self._engine_places:
            return {}
        asked = {
            "nodes": comp.nodes,
            "cpu_affinity": comp.cpu_affinity,
            "gpu_affinity": comp.gpu_affinity,
        }
        return {k: list(v) for k, v in asked.items() if v}

    @staticmethod
    def _dep_error(name: str, dep: ComponentRecord) -> DependencyFailed:
        root = dep.root_cause or dep.name
        why = f"dependency {dep.name!r} {dep.status}"
        if root != dep.name:
            why += f" (root cause: {root!r})"
        if dep.error:
            why += f": {dep.error}"
        return DependencyFailed(f"component {name!r} not run: {why}", name, dep.name, root)

    # -- ready -> resources -> executor ---------------------------------------------------
    def _ready_locked(self, node: _Node, now: float) -> int:
        """Dependencies met: take resources and mark running (0 when it must wait)."""
        if node.record.status != Status.PENDING or self._stopped:
            return 0
        if node.record.ready is None:
            node.record.ready = now
        if node.allot is None:
            allot = self._pool.try_acquire(node.comp, self._local_slots(node.comp))
            if allot is None:
                self._resource_queue.append(node)
                return 0
            node.allot = allot
        return self._mark_running(node, now)

    def _mark_running(self, node: _Node, now: float) -> int:
        node.attempt += 1
        rec = node.record
        rec.status, rec.attempts, rec.started = Status.RUNNING, node.attempt, now
        rec.cpus, rec.gpus = node.allot.pin, node.allot.gpus
        return node.attempt

    def _launch(self, node: _Node, attempt: int) -> None:
        """The one hand-over: ``executor.submit(run_task, spec)`` and one callback."""
        comp, allot = node.comp, node.allot
        env = dict(comp.env_vars) if comp.env_vars else {}
        if allot.gpus:
            env.update(allot.env(self._pool.gpu_var))
        carrier: dict = {}
        telemetry: dict = {}
        if self.profile or tracing_enabled():
            from opentelemetry import propagate

            propagate.inject(carrier)
            telemetry = telemetry_env()
        hosts = allot.hosts
        spec = TaskSpec(
            name=comp.name,
            executable=comp.executable,
            kind=comp.type,
            args=comp.args,
            env=env,
            pin=allot.pin,
            gpus=allot.gpus,
            timeout=comp.timeout,
            executor=self.executor_name,
            scheduler_pid=self._pid,
            attempt=attempt,
            nprocs=comp.nprocs,
            ppn=comp.ppn,
            hosts=hosts,
            launcher=comp.launcher or self.system.launcher,
            launcher_args=tuple(comp.launcher_args),
            placement=self._engine_placement(comp),
            trace_carrier=carrier,
            telemetry_env=telemetry,
            submitted=node.record.submitted,
            ready=node.record.ready or 0.0,
        )
        try:
            inner = self.executor.submit(run_task, spec)
        except BaseException as exc:
            self._attempt_failed(node, attempt, exc)
            return
        node.inner = inner
        if comp.timeout is not None:
            # A remote launch kills mpiexec itself at the timeout and reports stderr; the
            # scheduler's deadline is the backstop for that one.
            grace = 5.0 if comp.type == "remote" else 0.0
            self._deadlines.add(time.monotonic() + comp.timeout + grace, node, attempt)
        inner.add_done_callback(partial(self._on_done, node, attempt))

    def _retry(self, node: _Node) -> None:
        """Run another attempt of a node that holds its resources."""
        with self._lock:
            if node.record.status.finished:
                return
            attempt = self._mark_running(node, time.time())
        self._launch(node, attempt)

    # -- completion -------------------------------------------------------------------
    def _on_done(self, node: _Node, attempt: int, inner: Future) -> None:
        try:
            if node.attempt != attempt or node.record.status != Status.RUNNING:
                return  # a timed-out, interrupted or superseded attempt finishing late
            if inner.cancelled():
                why = CancelledError(f"the executor cancelled {node.record.name!r} before it ran")
                self._attempt_failed(node, attempt, why)
                return
            try:
                out = inner.result()
            except BaseException as exc:  # the attempt failed
                self._attempt_failed(node, attempt, exc)
                return
            self._settle_outcome(node, attempt, out)
        except BaseException as exc:  # a bug here must fail the component, never hang it
            self._finish(
                node,
                Status.FAILED,
                error=RuntimeError(
                    f"simai.orchestrator internal error while settling {node.record.name!r}: "
                    f"{exc!r}"
                ),
            )
            raise

    def _settle_outcome(self, node: _Node, attempt: int, out: Any) -> None:
        if isinstance(out, Outcome):
            value, started, ended = out.value, out.started, out.ended
        else:  # an executor that wraps results itself
            value, started, ended = out, None, time.time()
        rd = node.comp.return_dim if node.comp is not None else None
        if isinstance(rd, list):  # SimAI-Bench's form: the shape of the returned array
            got = tuple(getattr(value, "shape", None) or ())
            if rd and got != tuple(rd):
                err = ComponentError(
                    f"component {node.record.name!r} returned an array of shape {got}; "
                    f"return_dim={rd}",
                    node.record.name,
                )
                self._finish(node, Status.FAILED, error=err, attempt=attempt)
                return
        elif rd is not None and rd != 1:
            got = len(value) if isinstance(value, (tuple, list)) else 1
            if got != rd:
                err = ComponentError(
                    f"component {node.record.name!r} returned {got} values; return_dim={rd}",
                    node.record.name,
                )
                self._finish(node, Status.FAILED, error=err, attempt=attempt)
                return
        self._finish(
            node, Status.SUCCEEDED, result=value, started=started, ended=ended, attempt=attempt
        )

    def _attempt_failed(self, node: _Node, attempt: int, exc: BaseException) -> None:
        with self._lock:
            retry = (
                node.attempt == attempt
                and node.record.status == Status.RUNNING
                and node.comp is not None
                and attempt <= node.comp.retries
                and not self._stopped
            )
        if retry:
            if self.profile:
                self._event("retry", node, error=repr(exc))
            self._retry(node)
            return
        status = Status.INTERRUPTED if self._interrupted else Status.FAILED
        self._finish(node, status, error=exc, attempt=attempt)

    def _on_deadline(self, node: _Node, attempt: int) -> None:
        with self._lock:
            if node.attempt != attempt or node.record.status != Status.RUNNING:
                return
            name, timeout, inner = node.record.name, node.comp.timeout, node.inner
        exc = ComponentTimeout(
            f"component {name!r} exceeded its timeout of {timeout}s (attempt {attempt})", name
        )
        # Settle (or retry) first, so the late callback of the cancelled attempt is ignored.
        self._attempt_failed(node, attempt, exc)
        if inner is not None:
            with self._lock:
                self._overdue = [f for f in self._overdue if not f.done()]
                self._overdue.append(inner)
            inner.cancel()  # a queued attempt; one already running only if the engine can
            if isinstance(self.executor, CancelsRunning):
                self.executor.cancel_running([inner])

    def _finish(
        self,
        node: _Node,
        status: Status,
        *,
        result: Any = None,
        error: BaseException | None = None,
        started: float | None = None,
        ended: float | None = None,
        attempt: int | None = None,
    ) -> None:
        """Settle ``node`` and, iteratively, everything that depended on it."""
        work: list[tuple[_Node, Status, BaseException | None, int | None]] = [
            (node, status, error, attempt)
        ]
        while work:
            node, status, error, attempt = work.pop()
            launch: list[tuple[_Node, int]] = []
            with self._lock:
                rec = node.record
                if rec.status.finished or (attempt is not None and node.attempt != attempt):
                    continue
                now = time.time()
                rec.status = status
                if status == Status.SUCCEEDED:
                    rec.result = result
                    if started is not None:
                        rec.started = started
                    rec.ended = ended if ended is not None else now
                    result = started = ended = None  # dependents get their own
                else:
                    rec.ended = now
                    rec.error = f"{type(error).__name__}: {error}" if error is not None else status
                    rec.error_type = type(error).__name__ if error is not None else None
                    rec.root_cause = getattr(error, "root_cause", None) or rec.name
                ready: list[_Node] = []
                if node.allot is not None:
                    self._pool.release(node.allot)
                    node.allot = None
                    ready.extend(self._drain_resource_queue())
                dependents, node.dependents = node.dependents, []
                self._live.pop(rec.name, None)
                for dep in dependents:
                    if dep.record.status.finished:
                        continue  # already failed through another dependency
                    if status == Status.SUCCEEDED:
                        dep.waiting -= 1
                        if dep.waiting == 0:
                            ready.append(dep)
                    else:
                        work.append(
                            (dep, Status.FAILED, self._dep_error(dep.record.name, rec), None)
                        )
                fut, node.comp, node.inner = node.future, None, None
                for r in ready:
                    if attempt_r := self._ready_locked(r, now):
                        launch.append((r, attempt_r))
                if not self._live:
                    self._idle.notify_all()
            if rec.status == Status.SUCCEEDED:
                fut.set_result(rec.result)
            else:
                fut.set_exception(error or OrchestratorStopped(str(status), rec.name))
            for r, attempt_r in launch:
                self._launch(r, attempt_r)

    def _drain_resource_queue(self) -> list[_Node]:
        """Nodes from the resource queue that fit now (first fit, in arrival order)."""
        queue = self._resource_queue
        out: list[_Node] = []
        skipped: list[_Node] = []
        # Stop as soon as nothing is free: the rest of the queue stays where it is (the
        # common case is one slot freed, one node taken; copying the queue each time made
        # a long queue quadratic).
        while queue and self._pool.free != (0, 0):
            node = queue.popleft()
            if node.record.status != Status.PENDING:
                continue
            allot = self._pool.try_acquire(node.comp, self._local_slots(node.comp))
            if allot is None:
                skipped.append(node)
            else:
                node.allot = allot
                out.append(node)
        if skipped:
            queue.extendleft(reversed(skipped))
        return out

    def _event(self, what: str, node: _Node, **attrs: Any) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        span.add_event(f"orchestrator.{what}", {"simai.component": node.record.name, **attrs})

    # -- inspection ---------------------------------------------------------------------
    def records(self) -> dict[str, ComponentRecord]:
        with self._lock:
            return {n: replace(r) for n, r in self._records.items()}

    def record(self, name: str) -> ComponentRecord:
        with self._lock:
            rec = self._records.get(name)
            if rec is None:
                close = difflib.get_close_matches(name, list(self._records), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise KeyError(f"no component named {name!r}{hint}")
            return replace(rec)

    def future(self, name: str) -> Future | None:
        with self._lock:
            node = self._live.get(name)
            return node.future if node is not None else None

    @property
    def live_count(self) -> int:
        return len(self._live)

    def wait(self, timeout: float | None = None) -> RunReport:
        with self._idle:
            done = self._idle.wait_for(lambda: not self._live, timeout)
        return RunReport(self.records(), bool(done))

    def stop(
        self, cancel: bool = True, why: str = "the orchestrator stopped", interrupt: bool = False
    ) -> None:
        """Refuse new work; cancel components not yet handed to the executor. With
        ``interrupt``, a running attempt that ends in failure from now on (it is being
        stopped) is recorded as interrupted."""
        with self._lock:
            self._stopped = True
            self._interrupted = self._interrupted or interrupt
            waiting = [n for n in self._live.values() if n.record.status == Status.PENDING]
            self._resource_queue.clear()
        if cancel:
            for node in waiting:
                name = node.record.name
                self._finish(
                    node,
                    Status.CANCELLED,
                    error=OrchestratorStopped(f"component {name!r} cancelled: {why}", name),
                )
        if not self.running_futures():
            self._deadlines.close()

    def running_futures(self) -> list[Future]:
        """Executor Futures of running attempts, and of attempts overdue past their timeout."""
        with self._lock:
            live = [n.inner for n in self._live.values() if n.inner is not None]
            return live + [f for f in self._overdue if not f.done()]

    def overdue_running(self) -> bool:
        """Whether an attempt that exceeded its timeout is still running in the engine."""
        with self._lock:
            return any(not f.done() for f in self._overdue)

    def end_running(self, status: Status, why: str) -> None:
        """Settle whatever still runs as ``status`` (the executor is torn down under it)."""
        with self._lock:
            running = [n for n in self._live.values() if n.record.status == Status.RUNNING]
        for node in running:
            name = node.record.name
            self._finish(
                node, status, error=OrchestratorStopped(f"component {name!r}: {why}", name)
            )
        self._deadlines.close()


class _Deadlines:
    """One timer thread for every component timeout, started on first use.

    A failure while firing one deadline is logged and the loop goes on: a dead timer
    thread would silently stop enforcing every later timeout of the run.
    """

    def __init__(self, fire):
        self._fire = fire
        self._heap: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, when: float, node, attempt: int) -> None:
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, (when, next(self._seq), node, attempt))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="simai-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    # Bounded: Condition.wait rejects waits beyond threading.TIMEOUT_MAX.
                    self._cond.wait(min(delay, 3600.0))
                if self._closed:
                    return
                _, _, node, attempt = heapq.heappop(self._heap)
            try:
                self._fire(node, attempt)
            except Exception:
                log.exception("simai: enforcing the timeout of %s failed", node.record.name)
