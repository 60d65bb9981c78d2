"""`Orchestrator` (owns the executor and the DAG) and `OrchestratorClient` (submits to it)."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any

from simai.orchestrator import _lifecycle
from simai.orchestrator.allocation import Allocation
from simai.orchestrator.component import WorkflowComponent
from simai.orchestrator.config import OrchestratorConfig, SystemConfig
from simai.orchestrator.dag import ComponentRecord, RunReport, Scheduler, Status
from simai.orchestrator.protocols import CancelsRunning, ExecutorConfig, TerminatesWorkers

__all__ = ["Orchestrator", "OrchestratorClient", "OrchetratorClient"]


class OrchestratorClient:
    """Submits components. Usable inside running components, on any executor.

    In the orchestrator's own process it is this object; pickled into a worker process
    (process pool, Dask, Ray, Parsl, Dragon) it becomes a proxy that submits over an
    authenticated loopback connection, and whose futures complete when the orchestrator
    reports the component done.
    """

    def __init__(self, orchestrator: Orchestrator):
        self._orch = orchestrator

    def submit(self, component: WorkflowComponent) -> Future:
        """Submit one component; returns a `concurrent.futures.Future` of its result.

        Raises ValueError at once for an unknown dependency, a repeated name, or a
        resource request the system can never meet.
        """
        return self._orch._scheduler.submit(component)

    def submit_many(self, components) -> list[Future]:
        """Submit components that may depend on each other, in any order; cycles are rejected."""
        return self._orch._scheduler.submit_many(list(components))

    def status(self, name: str | None = None) -> ComponentRecord | dict[str, ComponentRecord]:
        """One component's record, or all of them by name (snapshots)."""
        if name is None:
            return self._orch.records()
        return self._orch._scheduler.record(name)

    def records(self) -> dict[str, ComponentRecord]:
        return self._orch.records()

    def __reduce__(self):
        from simai.orchestrator._proxy import RemoteClient

        return (RemoteClient, self._orch._client_server().proxy_args())

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._orch.__exit__(exc_type, exc, tb)


OrchetratorClient = OrchestratorClient  # the original's spelling


class Orchestrator:
    """Runs components on one executor, honouring dependencies, resources and timeouts.

    ``orchestrator_config`` is an `OrchestratorConfig`, or any object with
    ``get_executor()`` (a TaPS-style executor config), or a ready `Executor`.
    """

    def __init__(
        self,
        system_config: SystemConfig | None = None,
        orchestrator_config: OrchestratorConfig | ExecutorConfig | Executor | None = None,
    ):
        self.system_config = system_config or SystemConfig()
        self.orchestrator_config = orchestrator_config or OrchestratorConfig()
        self._scheduler: Scheduler | None = None
        self._executor: Executor | None = None
        self._client: OrchestratorClient | None = None
        self._server = None
        self._server_lock = threading.Lock()
        self._owns_executor = True
        self._interrupt_lock = threading.RLock()  # also taken in signal handlers
        self._interrupter: threading.Thread | None = None
        self._skip_grace = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> OrchestratorClient:
        if self._client is not None:
            return self._client
        cfg = self.orchestrator_config
        profile = False
        if isinstance(cfg, OrchestratorConfig):
            factory = cfg.executor_config()
            name, profile = cfg.name, cfg.profile
        elif isinstance(cfg, Executor):
            factory, name = None, type(cfg).__name__
            self._executor, self._owns_executor = cfg, False
        elif isinstance(cfg, ExecutorConfig):
            factory, name = cfg, getattr(cfg, "name", None) or type(cfg).__name__
        else:
            raise TypeError(
                "orchestrator_config must be an OrchestratorConfig, an object with "
                f"get_executor(), or an Executor; got {type(cfg).__name__}"
            )
        if factory is not None:
            self._executor = factory.get_executor()
        self._scheduler = Scheduler(self._executor, name, self.system_config, profile)
        self._client = OrchestratorClient(self)
        return self._client

    @property
    def client(self) -> OrchestratorClient:
        return self._client if self._client is not None else self.start()

    @property
    def executor(self) -> Executor | None:
        return self._executor

    def submit(self, component: WorkflowComponent) -> Future:
        return self.client.submit(component)

    def wait(self, timeout: float | None = None, *, signals: bool = True) -> RunReport:
        """Block until every submitted component (also those submitted by components) has
        finished, or ``timeout`` seconds passed. Never raises for failed components: the
        report says what happened (``report.ok``, ``report.failed``, ``report.not_done``).

        With ``signals`` and on the main thread, SIGTERM/SIGINT/SIGHUP/SIGUSR1 received
        meanwhile start `interrupt` (a second one skips the grace period); once the run
        has stopped, the signal is handed to the handler that was installed before.
        """
        if self._scheduler is None:
            return RunReport()
        _lifecycle.check_timeout(timeout, "timeout")
        if not signals:
            return self._scheduler.wait(timeout)
        with _lifecycle.SignalScope(lambda signum: self.interrupt()) as scope:
            report = self._scheduler.wait(timeout)
            if scope.received:
                report = self._scheduler.wait()
                self._join_interrupt()
        scope.chain()
        return report

    def records(self) -> dict[str, ComponentRecord]:
        """Per-component records (status, times, attempts, error, root cause, result)."""
        return self._scheduler.records() if self._scheduler is not None else {}

    def interrupt(self, grace: float | None = None) -> None:
        """Stop the run now, from any thread; returns at once (`wait` returns when done).

        Components not yet started are cancelled; running ones are asked to end
        (SIGTERM to their process groups and worker processes, cancellation of engine
        tasks) and, after ``grace`` seconds (default 10), killed; they are recorded as
        ``interrupted``. A second call skips what is left of the grace period. Engines
        this orchestrator attached to (an ``address``, or an Executor passed in) keep
        their workers.
        """
        if self._scheduler is None:
            return
        grace = _lifecycle.DEFAULT_GRACE_S if grace is None else float(grace)
        with self._interrupt_lock:
            if self._interrupter is not None:
                self._skip_grace.set()
                return
            self._interrupter = threading.Thread(
                target=self._interrupt, args=(grace,), name="simai-interrupt", daemon=True
            )
            self._interrupter.start()

    @property
    def interrupted(self) -> bool:
        """Whether `interrupt` was called."""
        return self._interrupter is not None

    def _interrupt(self, grace: float) -> None:
        sched, ex = self._scheduler, self._executor
        sched.stop(cancel=True, why="the run was interrupted", interrupt=True)
        running = sched.running_futures()
        for f in running:
            f.cancel()
        # Commands and mpiexec launched by components running in this process.
        _lifecycle.terminate_groups(signal.SIGTERM)
        workers = self._owns_executor and isinstance(ex, TerminatesWorkers)
        if workers:
            ex.terminate_workers(force=False)
        if isinstance(ex, CancelsRunning):
            ex.cancel_running(running)
        deadline = time.monotonic() + grace
        while not self._skip_grace.is_set() and time.monotonic() < deadline:
            if all(f.done() for f in running) and not _lifecycle.groups_alive():
                break
            self._skip_grace.wait(0.05)
        _lifecycle.terminate_groups(signal.SIGKILL)
        if workers:
            ex.terminate_workers(force=True)
        sched.end_running(Status.INTERRUPTED, "interrupted while running")

    def _join_interrupt(self) -> None:
        if self._interrupter is not None:
            self._interrupter.join()

    def stop(self, wait: bool = True, cancel: bool = True) -> None:
        """Cancel components still waiting (dependencies/resources), then shut the executor
        down. ``wait=True`` waits for running components to finish, including one past
        its timeout that its executor cannot stop (a thread); ``wait=False`` returns at
        once and ends worker processes that run an attempt past its timeout. Idempotent."""
        if self._scheduler is None:
            return
        self._scheduler.stop(cancel=cancel)
        self._join_interrupt()
        ex = self._executor
        if ex is not None and self._owns_executor:
            if not wait and self._scheduler.overdue_running() and isinstance(ex, TerminatesWorkers):
                ex.terminate_workers(force=True)  # before shutdown, which forgets the workers
            ex.shutdown(wait=wait, cancel_futures=True)
        self._scheduler.end_running(Status.FAILED, "the executor was shut down before it finished")
        if self._server is not None:
            self._server.close()
            self._server = None

    def _client_server(self):
        with self._server_lock:
            if self._server is None:
                from simai.orchestrator._proxy import ClientServer

                host = getattr(self.orchestrator_config, "client_host", None)
                self._server = ClientServer(self._client, host or self._derived_client_host())
            return self._server

    def _derived_client_host(self) -> str:
        """Workers must reach the client proxy: the address of the interface that routes to
        the engine's scheduler or the allocation's first other node; loopback when local."""
        from simai.orchestrator._proxy import reachable_host

        peers = []
        engine = getattr(self._executor, "engine_address", None)
        if callable(engine):
            try:
                peers.append(engine())
            except Exception:  # an engine that cannot say where it is: nodes still can
                pass
        pool = getattr(self._scheduler, "_pool", None)
        try:
            allocation = pool.allocation if pool is not None else Allocation.detect()
        except ValueError:  # an unreadable node file is reported where it is used
            allocation = None
        if allocation:
            peers.extend(allocation.nodes)
        return reachable_host(p for p in peers if p)

    def __enter__(self) -> Orchestrator:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.wait()
        self.stop(wait=exc_type is None)

    def __repr__(self) -> str:
        name = getattr(self.orchestrator_config, "name", type(self.orchestrator_config).__name__)
        state = "started" if self._scheduler is not None else "not started"
        return f"Orchestrator({name!r}, system={self.system_config.name!r}, {state})"

    def __getstate__(self) -> Any:
        raise TypeError("an Orchestrator cannot be pickled; pass its client to components instead")
