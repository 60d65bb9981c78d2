"""Extension points of the orchestrator, as small structural protocols.

The scheduler hands ready work to an executor one way only: ``executor.submit(run_task,
spec)`` with one completion callback. What an engine can do beyond
`concurrent.futures.Executor` is an optional capability below, detected with
``isinstance``; executors without it still work, they only stop less promptly.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Protocol, runtime_checkable

__all__ = ["CancelsRunning", "ExecutorConfig", "Launcher", "PlacesTasks", "TerminatesWorkers"]


@runtime_checkable
class ExecutorConfig(Protocol):
    """A one-method factory for a `concurrent.futures.Executor` (the TaPS shape).

    Every built-in executor is a pydantic model with this method, registered in the
    entry-point group ``simai.orchestrator.executors``. Any object of this shape (a TaPS
    ``ExecutorConfig`` for instance) can be handed to `Orchestrator` directly.

    The executor it returns must run picklable callables; if it runs them in another
    process it pickles them itself (or with cloudpickle). On ``shutdown()`` it releases
    only what it started.
    """

    def get_executor(self) -> Executor: ...


@runtime_checkable
class CancelsRunning(Protocol):
    """Optional capability: stop tasks that are already running (Dask, Ray).

    ``futures`` are Futures this executor's ``submit`` returned. Best effort and
    non-blocking: used when a component exceeds its timeout and when a run is
    interrupted. A plain ``Future.cancel()`` only stops work that has not started.
    """

    def cancel_running(self, futures: Sequence[Future]) -> None: ...


@runtime_checkable
class PlacesTasks(Protocol):
    """Optional capability: the engine places ``local`` components on its own workers.

    Dask, Ray, Parsl HTEX and Dragon schedule tasks onto workers that may live on other
    nodes. For them the driver's ``SystemConfig`` CPU/GPU slots and CPU pinning are not
    applied to ``local`` components: the engine's workers are the slots (a ``SystemConfig``
    of one node must not throttle a whole cluster). ``remote`` (MPI) components are still
    placed by the orchestrator on the allocation's nodes.
    """

    def places_tasks(self) -> bool: ...


@runtime_checkable
class TerminatesWorkers(Protocol):
    """Optional capability: end the executor's worker processes (process pools).

    ``force=False`` sends SIGTERM, on which a worker ends the process groups it started
    (commands, mpiexec) and exits; ``force=True`` sends SIGKILL. Used when a run is
    interrupted and before shutting down a pool whose workers run an attempt past its
    timeout. Tasks running in them fail; the pool starts new workers for later work.
    """

    def terminate_workers(self, force: bool = False) -> None: ...


@runtime_checkable
class Launcher(Protocol):
    """Starts a remote component's ranks: ``mpiexec``, ``srun``, ... (see `simai.orchestrator.launchers`).

    ``command`` turns a `simai.orchestrator.launchers.LaunchRequest` (argv, ranks, ranks
    per node, hosts, cores, variable names, extra flags) into the launcher's argv. It
    must pass variables by name, never their values, and must not need a scheduler to be
    present. Third-party launchers register in the entry-point group
    ``simai.orchestrator.launchers``.
    """

    name: str

    def command(self, request) -> list[str]: ...
