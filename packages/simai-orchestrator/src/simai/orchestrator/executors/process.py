"""``process-pool``: a ProcessPoolExecutor that ships callables with cloudpickle and
replaces itself when a worker dies (the in-flight components fail, or are retried)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator import _lifecycle


def _call_pickled(payload: bytes):
    import pickle

    fn, args, kwargs = pickle.loads(payload)  # produced by our own submit() below
    try:
        with _lifecycle.worker_task():
            return fn(*args, **kwargs)
    except BaseException as exc:
        raise _picklable(exc) from None


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the trip back to the orchestrator, else a `RemoteError` with
    its type name, message and traceback text (instead of the pool's PicklingError)."""
    import pickle
    import traceback

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        from simai.orchestrator.errors import RemoteError

        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        text = "".join(traceback.format_exception(exc))
        return RemoteError(f"{name}: {exc}\n{text}", name, text)


def _worker_processes(pool: ProcessPoolExecutor) -> list:
    """The pool's worker processes.

    Python < 3.14 has no public way to reach them (3.14 adds terminate_workers and
    kill_workers); ``_processes`` is read here only, and tests/test_lifecycle_internals
    fails loudly if an upgrade removes it.
    """
    return list(pool._processes.values())


class CloudpickleProcessPool(Executor):
    """ProcessPoolExecutor + cloudpickle (lambdas, closures, test-local functions) + self-repair."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context=None,
        max_tasks_per_child: int | None = None,
    ):
        self._kwargs = {
            "max_workers": max_workers,
            "mp_context": mp_context,
            "initializer": _lifecycle.init_worker,
            "initargs": (os.getpid(),),
        }
        if max_tasks_per_child is not None:
            self._kwargs["max_tasks_per_child"] = max_tasks_per_child
        self._lock = threading.Lock()
        self._pool = ProcessPoolExecutor(**self._kwargs)
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        import cloudpickle

        payload = cloudpickle.dumps((fn, args, kwargs))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            try:
                return self._pool.submit(_call_pickled, payload)
            except BrokenProcessPool:
                # A worker died; its pool is unusable. Start a fresh one for later work.
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(**self._kwargs)
                return self._pool.submit(_call_pickled, payload)

    def terminate_workers(self, force: bool = False) -> None:
        """`TerminatesWorkers`: SIGTERM (the worker ends its process groups) or SIGKILL."""
        with self._lock:
            pool = self._pool
        if sys.version_info >= (3, 14):
            (pool.kill_workers if force else pool.terminate_workers)()
            return
        for proc in _worker_processes(pool):
            with contextlib.suppress(Exception):
                proc.kill() if force else proc.terminate()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            pool = self._pool
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class ProcessPoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "process-pool"
    max_workers: int | None = Field(default=None, ge=1, description="default: os.cpu_count()")
    start_method: Literal["forkserver", "spawn", "fork"] = Field(
        default="forkserver",
        description="forkserver: fast worker start without forking a threaded process",
    )
    max_tasks_per_child: int | None = Field(default=None, ge=1)

    def get_executor(self) -> CloudpickleProcessPool:
        if self.start_method != "fork":
            from simai.orchestrator._main_guard import require_main_guard

            require_main_guard(f"the process-pool executor ({self.start_method})")
        ctx = multiprocessing.get_context(self.start_method)
        return CloudpickleProcessPool(self.max_workers, ctx, self.max_tasks_per_child)
