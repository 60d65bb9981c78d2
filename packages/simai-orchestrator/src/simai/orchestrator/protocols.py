"""Extension points of the orchestrator, as small structural protocols."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol, runtime_checkable

__all__ = ["ExecutorConfig"]


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
