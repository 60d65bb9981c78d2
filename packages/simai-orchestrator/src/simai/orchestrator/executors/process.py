"""``process-pool``: a ProcessPoolExecutor that ships callables with cloudpickle and
replaces itself when a worker dies (the in-flight components fail, or are retried)."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def _call_pickled(payload: bytes):
    import pickle

    fn, args, kwargs = pickle.loads(payload)  # produced by our own submit() below
    return fn(*args, **kwargs)


class CloudpickleProcessPool(Executor):
    """ProcessPoolExecutor + cloudpickle (lambdas, closures, test-local functions) + self-repair."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context=None,
        max_tasks_per_child: int | None = None,
    ):
        self._kwargs = {"max_workers": max_workers, "mp_context": mp_context}
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

    def terminate_workers(self) -> None:
        """Kill the worker processes (used for components stuck past their timeout)."""
        with self._lock:
            pool = self._pool
        if hasattr(pool, "terminate_workers"):  # Python >= 3.14
            pool.terminate_workers()
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()

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
        ctx = multiprocessing.get_context(self.start_method)
        return CloudpickleProcessPool(self.max_workers, ctx, self.max_tasks_per_child)
