"""``dask``: a Dask LocalCluster on loopback (or an existing scheduler at ``address``)."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor, Future

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator.executors._missing import require


async def _relay(dfut, out: Future, outbox: queue.SimpleQueue) -> None:
    """Fetch the result inside the client's event loop, settle the Future off it."""
    try:
        outbox.put((out, True, await dfut._result()))
    except BaseException as exc:
        outbox.put((out, False, exc))


def _settle_outbox(outbox: queue.SimpleQueue) -> None:
    # Callbacks of settled futures (the orchestrator's and the user's) may block or call
    # Dask's synchronous API, which must never happen on the event loop: run them here.
    while (item := outbox.get()) is not None:
        out, ok, value = item
        if not out.set_running_or_notify_cancel():
            continue
        if ok:
            out.set_result(value)
        else:
            out.set_exception(value)


def _run_after(fn, args, kwargs, *_done):
    # ``_done`` are the dependencies' results: Dask passes them once they exist, which is
    # the point; the component does not see them.
    return fn(*args, **kwargs)


class DaskExecutor(Executor):
    """Submits through a ``distributed.Client``; closes only the cluster it started."""

    def __init__(self, config: DaskConfig):
        dask = require("dask", "dask", "dask")
        distributed = require("distributed", "dask", "dask")
        self._cluster = None
        # Worker loss is retried by the orchestrator (WorkflowComponent.retries), so Dask's
        # own re-runs are off by default: a killed worker fails the component at once.
        with dask.config.set({"distributed.scheduler.allowed-failures": config.allowed_failures}):
            if config.address:
                self.client = distributed.Client(config.address, timeout=config.connect_timeout)
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=config.max_workers,
                    threads_per_worker=config.threads_per_worker,
                    processes=config.processes,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0" if config.dashboard else None,
                    memory_limit=config.memory_limit,
                    silence_logs=config.silence_logs,
                )
                self.client = distributed.Client(self._cluster)
        self._lock = threading.Lock()
        self._closed = False
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._settler = threading.Thread(
            target=_settle_outbox, args=(self._outbox,), name="simai-dask-settle", daemon=True
        )
        self._settler.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._submit(fn, args, kwargs, ())

    def submit_after(self, fn, /, *args, after=(), **kwargs) -> Future:
        """`EngineDependencies`: the Dask scheduler starts ``fn`` when ``after`` are done."""
        deps = tuple(f._simai_engine_future for f in after)
        return self._submit(fn, args, kwargs, deps)

    def _submit(self, fn, args, kwargs, deps) -> Future:
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        out: Future = Future()
        if deps:
            dfut = self.client.submit(_run_after, fn, args, kwargs, *deps, pure=False)
        else:
            dfut = self.client.submit(fn, *args, pure=False, **kwargs)
        out._simai_engine_future = dfut  # type: ignore[attr-defined]

        # Await the result inside the client's event loop, then hand it to one settling
        # thread: fewer hops than Future.add_done_callback + result() (loop -> callback
        # thread -> loop again for the gather -> callback thread).
        self.client.loop.add_callback(_relay, dfut, out, self._outbox)
        return out

    def cancel_running(self, fut: Future) -> None:
        dfut = getattr(fut, "_simai_engine_future", None)
        if dfut is not None:
            dfut.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._outbox.put(None)


class DaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "dask"
    address: str | None = Field(
        default=None, description="existing scheduler, e.g. tcp://127.0.0.1:8786"
    )
    max_workers: int | None = Field(default=2, ge=1, description="LocalCluster workers")
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = True
    dashboard: bool = False
    memory_limit: str | float | None = "auto"
    allowed_failures: int = Field(default=0, ge=0)
    silence_logs: int = 50  # logging.CRITICAL: failures are reported by the orchestrator
    connect_timeout: str = "30s"

    def get_executor(self) -> DaskExecutor:
        return DaskExecutor(self)
