"""Extension points of the orchestrator, as small structural protocols."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, Protocol, runtime_checkable

__all__ = ["EngineDependencies", "ExecutorConfig"]


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
class EngineDependencies(Protocol):
    """An optional executor capability: start a task inside the engine after others.

    ``after`` holds Futures that this executor's own ``submit``/``submit_after`` returned
    and that have not necessarily finished. The engine starts ``fn(*args, **kwargs)``
    the moment all of them have succeeded, without a round trip to the orchestrator
    (Dask futures, Ray ObjectRefs or Parsl AppFutures passed as task arguments). When
    one of them fails, the returned Future fails too; the orchestrator then reports the
    dependent with `DependencyFailed` naming the root cause, as on the ordinary path.

    The orchestrator detects it with ``isinstance`` and uses it only for components that
    hold the default resources (one CPU slot, no GPU, no affinity), are ``type="local"``,
    have no retries, no timeout and no ``return_dim`` check, and whose unfinished
    dependencies are all running on the engine with none of those either; everything else
    takes the ordinary path (handed over when the orchestrator has settled its last
    dependency).
    """

    def submit_after(
        self, fn: Callable[..., Any], /, *args: Any, after: Sequence[Future], **kwargs: Any
    ) -> Future: ...
