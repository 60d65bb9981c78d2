"""The dependency graph, written once above every executor.

A component is handed to the executor by the completion callback of its last
dependency (or at submit when it has none): no thread sleeps or polls. Completed
components shrink to a `ComponentRecord`; everything else about them is dropped.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import os
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simai.orchestrator._otel import tracing_enabled
from simai.orchestrator._runner import TaskSpec, run_task
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import SystemConfig
from simai.orchestrator.errors import (
    ComponentError,
    ComponentTimeout,
    DependencyFailed,
    OrchestratorStopped,
)
from simai.orchestrator.mpi import host_list
from simai.orchestrator.protocols import EngineDependencies
from simai.orchestrator.resources import Allotment, ResourcePool

__all__ = ["ComponentRecord", "RunReport", "Scheduler"]

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
_FINISHED = frozenset((SUCCEEDED, FAILED, CANCELLED))


@dataclass(slots=True)
class ComponentRecord:
    """What happened to one component. Times are ``time.time()`` seconds (None until known).

    ``status``: pending (waiting for dependencies or resources), running (handed to the
    executor), succeeded, failed, cancelled. ``started``/``ended`` are measured inside the
    worker for successful runs. ``root_cause`` names the component whose failure made this
    one fail (itself when it failed on its own).
    """

    name: str
    status: str = PENDING
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
        return self.status in _FINISHED

    def as_dict(self, include_result: bool = False) -> dict:
        d = asdict(self)
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
        return self.done and all(r.status == SUCCEEDED for r in self.records.values())

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.records.items() if r.status in (FAILED, CANCELLED)]

    @property
    def not_done(self) -> list[str]:
        return [n for n, r in self.records.items() if not r.done]

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.records.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        lines = [", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no components"]
        for n in self.failed:
            r = self.records[n]
            lines.append(f"  {n}: {r.status} - {r.error}")
        return "\n".join(lines)


class _Node:
    __slots__ = (
        "after",
        "allot",
        "attempt",
        "comp",
        "dependents",
        "eager",
        "future",
        "inner",
        "lender",
        "lent_to",
        "parked",
        "record",
        "waiting",
    )

    def __init__(self, comp: WorkflowComponent, record: ComponentRecord):
        self.comp = comp
        self.record = record
        self.future: Future = Future()
        self.dependents: list[_Node] = []
        self.waiting = 0
        self.attempt = 0
        self.allot: Allotment | None = None
        self.inner: Future | None = None
        # Engine-side dependencies: handed over before its dependencies finished
        # (``eager``), with their engine Futures (``after``, until launched); an outcome
        # that arrives before the orchestrator settled those dependencies is ``parked``.
        self.eager = False
        self.after: list[Future] | None = None
        self.parked: Future | None = None
        # A CPU slot passed from a running dependency to a dependent that the engine
        # starts only after it: the two never run at once, so they share one slot.
        self.lender: _Node | None = None
        self.lent_to: _Node | None = None


class Scheduler:
    """Dependency tracking, resource gating, retries and timeouts over one Executor."""

    def __init__(
        self,
        executor: Executor,
        executor_name: str,
        system: SystemConfig,
        profile: bool = False,
        cancel_running=None,
    ):
        self.executor = executor
        self.executor_name = executor_name
        self.system = system
        self.profile = profile
        self._cancel_running = cancel_running
        # Engine futures of attempts that ran past their timeout: already failed here, but
        # the engine may still be running them (a thread cannot be stopped).
        self._overdue: list[Future] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._live: dict[str, _Node] = {}
        self._records: dict[str, ComponentRecord] = {}
        self._resource_queue: deque[_Node] = deque()
        self._pool = ResourcePool(system)
        self._hosts = tuple(host_list())
        self._pid = os.getpid()
        self._deadlines = _Deadlines(self._on_deadline)
        self._stopped = False
        self._tracer = None
        # A thread pool runs the task in this process: the worker settles it right after
        # running it, instead of through the pool's Future and a done callback (two
        # condition-variable round trips and a closure fewer per component).
        self._inline = type(executor) is ThreadPoolExecutor
        self._eager = isinstance(executor, EngineDependencies)
        # Nodes that could go to the engine ahead of their dependencies but found no free
        # CPU slot; tried again whenever a slot is released.
        self._eager_queue: deque[_Node] = deque()

    # -- submission ------------------------------------------------------------------
    def submit(self, comp: WorkflowComponent) -> Future:
        """One component: the hot path of every workflow, so no batch bookkeeping."""
        if type(comp) is not WorkflowComponent:
            comp = self._coerce(comp)
        self._pool.check(comp, local_slots=self._local_slots(comp))
        now = time.time()
        deps = comp.dependencies
        # Built before taking the lock: nothing else can see them until they are inserted.
        rec = ComponentRecord(
            comp.name,
            PENDING,
            now,
            executor=self.executor_name,
            type=comp.type,
            dependencies=tuple(deps),
        )
        node = _Node(comp, rec)
        failed_dep = None
        attempt = 0
        with self._lock:
            if self._stopped:
                raise RuntimeError("the orchestrator is stopped; start a new one to submit")
            records = self._records
            if comp.name in records or any(d not in records for d in deps):
                self._check_known([comp])  # raises with the message
            live_nodes = self._live
            for dep in deps:
                live = live_nodes.get(dep)
                if live is not None:
                    live.dependents.append(node)
                    node.waiting += 1
                elif failed_dep is None and records[dep].status != SUCCEEDED:
                    failed_dep = records[dep]
            live_nodes[comp.name] = node
            records[comp.name] = rec
            if failed_dep is None:
                if node.waiting == 0:
                    attempt = self._ready_locked(node, now)
                elif self._eager:
                    attempt = self._eager_locked(node, now)
        if failed_dep is not None:
            self._finish(node, FAILED, error=self._dep_error(comp.name, failed_dep))
        elif attempt:
            self._launch(node, attempt)
        return node.future

    def submit_many(self, comps: list[WorkflowComponent]) -> list[Future]:
        """Submit components that may depend on each other in any order (cycles rejected)."""
        comps = [self._coerce(c) for c in comps]
        order = self._check_batch(comps)
        nodes, to_ready, to_fail = [], [], []
        now = time.time()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the orchestrator is stopped; start a new one to submit")
            self._check_known(comps)
            for comp in order:
                rec = ComponentRecord(
                    comp.name,
                    submitted=now,
                    executor=self.executor_name,
                    type=comp.type,
                    dependencies=tuple(comp.dependencies),
                )
                node = _Node(comp, rec)
                failed_dep = None
                for dep in comp.dependencies:
                    live = self._live.get(dep)
                    if live is not None:
                        live.dependents.append(node)
                        node.waiting += 1
                    elif self._records[dep].status != SUCCEEDED and failed_dep is None:
                        failed_dep = self._records[dep]
                self._live[comp.name] = node
                self._records[comp.name] = rec
                nodes.append(node)
                if failed_dep is not None:
                    to_fail.append((node, self._dep_error(comp.name, failed_dep)))
                else:
                    if node.waiting == 0:
                        attempt = self._ready_locked(node, now)
                    elif self._eager:
                        attempt = self._eager_locked(node, now)
                    else:
                        attempt = 0
                    if attempt:
                        to_ready.append((node, attempt))
        by_name = {n.comp.name: n for n in nodes}
        for node, exc in to_fail:
            self._finish(node, FAILED, error=exc)
        for node, attempt in to_ready:
            self._launch(node, attempt)
        return [by_name[c.name].future for c in comps]

    @staticmethod
    def _coerce(comp: Any) -> WorkflowComponent:
        if isinstance(comp, WorkflowComponent):
            return comp
        if isinstance(comp, dict):
            return WorkflowComponent(**comp)
        raise TypeError(f"submit() takes a WorkflowComponent, not {type(comp).__name__}")

    def _check_batch(self, comps: list[WorkflowComponent]) -> list[WorkflowComponent]:
        if len(comps) == 1:
            c = comps[0]
            self._pool.check(c, local_slots=self._local_slots(c))
            return comps
        import graphlib

        names = [c.name for c in comps]
        dup = {n for n in names if names.count(n) > 1} if len(set(names)) != len(names) else set()
        if dup:
            raise ValueError(f"component names must be unique; repeated: {sorted(dup)}")
        for c in comps:
            self._pool.check(c, local_slots=self._local_slots(c))
        if len(comps) == 1:
            return comps
        inside = set(names)
        graph = {c.name: [d for d in c.dependencies if d in inside] for c in comps}
        try:
            order = list(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ValueError(f"dependency cycle: {cycle}") from None
        by_name = {c.name: c for c in comps}
        return [by_name[n] for n in order]

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
        # Multi-node launches are placed by mpiexec on the job's hosts, not on this node.
        return not (comp.type == "remote" and (comp.nodes or (self._hosts and comp.nnodes > 1)))

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
    def _ready(self, node: _Node) -> None:
        with self._lock:
            attempt = self._ready_locked(node, time.time())
        if attempt:
            self._launch(node, attempt)

    def _ready_locked(self, node: _Node, now: float) -> int:
        """Dependencies met: take resources and mark running (0 when it must wait)."""
        if node.record.status != PENDING:
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
        rec.status, rec.attempts, rec.started = RUNNING, node.attempt, now
        rec.cpus, rec.gpus = node.allot.pin, node.allot.gpus
        return node.attempt

    def _dispatch(self, node: _Node) -> None:
        """Run another attempt of a node that holds its resources (a retry)."""
        with self._lock:
            if node.record.status in _FINISHED:
                return
            attempt = self._mark_running(node, time.time())
        self._launch(node, attempt)

    # -- engine-side dependencies ----------------------------------------------------------
    @staticmethod
    def _plain(comp: WorkflowComponent) -> bool:
        """Its engine Future is its final outcome: no retry, timeout or result check here."""
        return comp.retries == 0 and comp.timeout is None and comp.return_dim in (None, 1)

    def _eager_locked(self, node: _Node, now: float) -> int:
        """Hand ``node`` to the engine before its dependencies finish, when allowed.

        The rule (documented in protocols.EngineDependencies and the README): the
        executor has ``submit_after``; the component is local, plain and asks for the
        default resources (its one CPU slot is still taken now, so resource limits hold);
        every unfinished dependency is running on the engine and plain. Returns the
        attempt number, or 0 to stay on the ordinary path.
        """
        comp = node.comp
        if (
            node.record.status != PENDING
            or node.waiting == 0
            or comp is None
            or not self._plain(comp)
            or comp.type != "local"
            or comp.nnodes != 1
            or comp.ppn != 1
            or comp.cpu_affinity is not None
            or comp.gpu_affinity is not None
            or comp.num_gpus_per_process
        ):
            return 0
        after = []
        lender = None
        for name in comp.dependencies:
            dep = self._live.get(name)
            if dep is None:
                continue  # settled and succeeded (a failed one has failed this node)
            if (
                dep.record.status != RUNNING
                or dep.inner is None
                or dep.comp is None
                or not self._plain(dep.comp)
            ):
                return 0  # tried again when that dependency is launched
            after.append(dep.inner)
            if (
                lender is None
                and dep.lent_to is None
                and dep.allot is not None
                and len(dep.allot.cpu_slots) == 1
                and not dep.allot.gpus
            ):
                lender = dep
        if lender is not None:
            # The engine starts this one only after ``lender`` finished: reuse its slot.
            allot = lender.allot
            lender.lent_to, node.lender = node, lender
        else:
            allot = self._pool.try_acquire(comp, True)
            if allot is None:
                self._eager_queue.append(node)
                return 0
        node.allot, node.after, node.eager = allot, after, True
        return self._mark_running(node, now)

    def _launch(self, node: _Node, attempt: int) -> None:
        self._submit_attempt(node, attempt)
        if not self._eager or not node.dependents:
            return
        # Its dependents may now go to the engine behind it (iteratively: a chain of
        # them is handed over in one go, as far as CPU slots allow).
        work = [node]
        while work:
            n = work.pop()
            if n.inner is None or not n.dependents:
                continue
            launch = []
            with self._lock:
                now = time.time()
                for d in n.dependents:
                    a = self._eager_locked(d, now)
                    if a:
                        launch.append((d, a))
            for d, a in launch:
                self._submit_attempt(d, a)
                work.append(d)

    def _submit_attempt(self, node: _Node, attempt: int) -> None:
        comp, allot = node.comp, node.allot
        env = dict(comp.env_vars) if comp.env_vars else {}
        if allot.gpus:
            env.update(allot.env(self._pool.gpu_var))
        carrier: dict = {}
        if self.profile or tracing_enabled():
            from opentelemetry import propagate

            propagate.inject(carrier)
        hosts = tuple(comp.nodes or ()) or (self._hosts[: comp.nnodes] if comp.nnodes > 1 else ())
        spec = TaskSpec(
            comp.name,
            comp.executable,
            comp.type,
            comp.args,
            env,
            allot.pin,
            allot.gpus,
            comp.timeout,
            self.executor_name,
            self._pid,
            attempt,
            comp.nprocs,
            comp.ppn,
            hosts,
            carrier,
            node.record.submitted,
            node.record.ready or 0.0,
        )
        try:
            if node.after is not None:
                after, node.after = node.after, None
                inner = self.executor.submit_after(run_task, spec, after=after)
            elif self._inline:
                inner = self.executor.submit(self._run_here, node, attempt, spec)
            else:
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
        if not self._inline or node.eager:
            inner.add_done_callback(
                lambda f, node=node, attempt=attempt: self._on_done(node, attempt, f)
            )
        else:
            # Settled by the worker itself; only a pool shut down under it (cancelling
            # queued work) is reported through the Future.
            inner._simai_attempt = (node, attempt)  # type: ignore[attr-defined]
            inner.add_done_callback(self._inline_cancelled)

    def _inline_cancelled(self, inner: Future) -> None:
        if inner.cancelled():
            node, attempt = inner._simai_attempt  # type: ignore[attr-defined]
            self._attempt_failed(
                node, attempt, CancelledError("the thread pool cancelled it before it ran")
            )

    def _run_here(self, node: _Node, attempt: int, spec: TaskSpec) -> None:
        """Run and settle one attempt in a worker thread of this process."""
        try:
            out = run_task(spec)
        except BaseException as exc:
            out, failed = exc, True
        else:
            failed = False
        try:
            if failed:
                self._attempt_failed(node, attempt, out)
            else:
                self._settle_outcome(node, attempt, out)
        except BaseException as exc:  # a bug here must fail the component, never hang it
            self._internal_error(node, exc)
            raise

    # -- completion -------------------------------------------------------------------
    def _on_done(self, node: _Node, attempt: int, inner: Future) -> None:
        try:
            self._settle(node, attempt, inner)
        except BaseException as exc:  # a bug here must fail the component, never hang it
            self._internal_error(node, exc)
            raise

    def _internal_error(self, node: _Node, exc: BaseException) -> None:
        self._finish(
            node,
            FAILED,
            error=RuntimeError(
                f"simai.orchestrator internal error while settling {node.record.name!r}: {exc!r}"
            ),
        )

    def _settle(self, node: _Node, attempt: int, inner: Future) -> None:
        if node.attempt != attempt or node.record.status != RUNNING:
            return  # a timed-out or superseded attempt finishing late
        if node.eager:
            with self._lock:
                if node.waiting > 0 and node.record.status == RUNNING:
                    # The engine finished it before the orchestrator settled all of its
                    # dependencies: decide once they are (a failed one fails it with
                    # DependencyFailed, whatever error the engine propagated).
                    node.parked = inner
                    return
        try:
            out = inner.result()
        except BaseException as exc:  # the attempt failed (or was cancelled)
            self._attempt_failed(node, attempt, exc)
            return
        self._settle_outcome(node, attempt, out)

    def _settle_outcome(self, node: _Node, attempt: int, out: Any) -> None:
        if node.attempt != attempt or node.record.status != RUNNING:
            return  # a timed-out or superseded attempt finishing late
        if isinstance(out, tuple) and len(out) == 5 and out[0] == "simai-outcome":
            _, value, started, ended, _pid = out
        else:  # an executor that wraps results itself
            value, started, ended = out, None, time.time()
        rd = node.comp.return_dim
        if rd is not None and rd != 1:
            got = len(value) if isinstance(value, (tuple, list)) else 1
            if got != rd:
                err = ComponentError(
                    f"component {node.comp.name!r} returned {got} values; return_dim={rd}",
                    node.comp.name,
                )
                self._finish(node, FAILED, error=err, attempt=attempt)
                return
        self._finish(node, SUCCEEDED, result=value, started=started, ended=ended, attempt=attempt)

    def _attempt_failed(self, node: _Node, attempt: int, exc: BaseException) -> None:
        with self._lock:
            retry = (
                node.attempt == attempt
                and node.record.status == RUNNING
                and attempt <= node.comp.retries
                and not self._stopped
            )
        if retry:
            if self.profile:
                self._event("retry", node, error=repr(exc))
            self._dispatch(node)
            return
        self._finish(node, FAILED, error=exc, attempt=attempt)

    def _on_deadline(self, node: _Node, attempt: int) -> None:
        with self._lock:
            if node.attempt != attempt or node.record.status != RUNNING:
                return
            name, timeout, inner = node.comp.name, node.comp.timeout, node.inner
        exc = ComponentTimeout(
            f"component {name!r} exceeded its timeout of {timeout}s (attempt {attempt})", name
        )
        # Settle (or retry) first, so the late callback of the cancelled attempt is ignored.
        self._attempt_failed(node, attempt, exc)
        if inner is not None:
            with self._lock:
                self._overdue = [f for f in self._overdue if not f.done()]
                self._overdue.append(inner)
            try:  # best effort: not every engine can stop work it started (threads, Parsl)
                inner.cancel()
                if self._cancel_running is not None:
                    self._cancel_running(inner)
            except Exception:
                pass

    def _finish(
        self,
        node: _Node,
        status: str,
        *,
        result: Any = None,
        error: BaseException | None = None,
        started: float | None = None,
        ended: float | None = None,
        attempt: int | None = None,
    ) -> None:
        """Settle ``node`` and, iteratively, everything that depended on it."""
        work = [(node, status, result, error, started, ended, attempt)]
        while work:
            node, status, result, error, started, ended, attempt = work.pop()
            ready: list[_Node] = []
            launch: list[tuple[_Node, int]] = []
            unpark: list[tuple[_Node, Future]] = []
            with self._lock:
                rec = node.record
                if rec.status in _FINISHED or (attempt is not None and node.attempt != attempt):
                    continue
                now = time.time()
                rec.status = status
                if started is not None:
                    rec.started = started
                rec.ended = ended if ended is not None else now
                if status == SUCCEEDED:
                    rec.result = result
                else:
                    rec.error = f"{type(error).__name__}: {error}" if error is not None else status
                    rec.error_type = type(error).__name__ if error is not None else None
                    rec.root_cause = getattr(error, "root_cause", None) or rec.name
                if node.allot is not None:
                    # A shared slot goes back to the pool when the second of the two
                    # sharing it finishes.
                    if node.lent_to is not None and node.lent_to.record.status not in _FINISHED:
                        node.lent_to.lender = None
                    elif node.lender is not None and node.lender.record.status not in _FINISHED:
                        node.lender.lent_to = None
                    else:
                        self._pool.release(node.allot)
                        ready.extend(self._drain_resource_queue())
                    node.allot = node.lender = node.lent_to = None
                dependents, node.dependents = node.dependents, []
                self._live.pop(rec.name, None)
                for dep in dependents:
                    if dep.record.status in _FINISHED:
                        continue  # already failed through another dependency
                    if status == SUCCEEDED:
                        dep.waiting -= 1
                        if dep.waiting == 0:
                            if dep.eager:  # already with the engine
                                dep.record.ready = now
                                if dep.parked is not None:
                                    unpark.append((dep, dep.parked))
                                    dep.parked = None
                            else:
                                ready.append(dep)
                    else:
                        work.append(
                            (
                                dep,
                                FAILED,
                                None,
                                self._dep_error(dep.record.name, rec),
                                None,
                                None,
                                None,
                            )
                        )
                fut, node.comp, node.inner = node.future, None, None
                node.after = node.parked = None
                for r in ready:
                    attempt_r = self._ready_locked(r, now)
                    if attempt_r:
                        launch.append((r, attempt_r))
                for _ in range(len(self._eager_queue)):
                    if self._pool.free[0] == 0:
                        break
                    e = self._eager_queue.popleft()
                    attempt_e = self._eager_locked(e, now)
                    if attempt_e:
                        launch.append((e, attempt_e))
                if not self._live:
                    self._idle.notify_all()
            if status == SUCCEEDED:
                fut.set_result(result)
            elif status == CANCELLED and not isinstance(error, BaseException):
                fut.cancel()
                fut.set_running_or_notify_cancel()
            else:
                fut.set_exception(error)
            for r, attempt_r in launch:
                self._launch(r, attempt_r)
            for r, parked in unpark:
                self._on_done(r, r.attempt, parked)

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
            if node.record.status != PENDING:
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

    def stop(self, cancel: bool = True) -> None:
        """Refuse new work; cancel components not yet handed to the executor."""
        with self._lock:
            self._stopped = True
            waiting = [n for n in self._live.values() if n.record.status == PENDING]
            self._resource_queue.clear()
            self._eager_queue.clear()
        if cancel:
            for node in waiting:
                self._finish(
                    node,
                    CANCELLED,
                    error=OrchestratorStopped(
                        f"component {node.record.name!r} cancelled: the orchestrator stopped",
                        node.record.name,
                    ),
                )
        self._deadlines.close()

    def overdue_running(self) -> bool:
        """Whether an attempt that exceeded its timeout is still running in the engine."""
        with self._lock:
            return any(not f.done() for f in self._overdue)

    def fail_running(self, why: str) -> None:
        """Fail whatever is still running (used when the executor is torn down under it)."""
        with self._lock:
            running = [n for n in self._live.values() if n.record.status == RUNNING]
        for node in running:
            self._finish(
                node,
                FAILED,
                error=OrchestratorStopped(
                    f"component {node.record.name!r}: {why}", node.record.name
                ),
            )


class _Deadlines:
    """One timer thread for every component timeout, started on first use."""

    def __init__(self, fire):
        self._fire = fire
        self._heap: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, when: float, node, attempt: int) -> None:
        with self._cond:
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
                    self._cond.wait(delay)
                if self._closed:
                    return
                _, _, node, attempt = heapq.heappop(self._heap)
            if node.record.status == RUNNING and node.attempt == attempt:
                self._fire(node, attempt)
