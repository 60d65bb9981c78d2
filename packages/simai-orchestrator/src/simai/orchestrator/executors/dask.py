"""``dask``: a Dask LocalCluster on loopback (or an existing scheduler at ``address``)."""

from __future__ import annotations

import queue
import tempfile
import threading
from concurrent.futures import CancelledError, Executor, Future

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simai.orchestrator.executors._missing import require
from simai.orchestrator.executors.process import _call_pickled


def _settle_outbox(outbox: queue.SimpleQueue) -> None:
    # Completion callbacks (the orchestrator's and the user's) may block or call Dask's
    # synchronous API, which must never happen on the client's event loop, where Dask's
    # ClientExecutor settles its Futures: copy each outcome here, on this thread.
    while (item := outbox.get()) is not None:
        out, inner = item
        if not out.set_running_or_notify_cancel():
            continue
        if inner.cancelled():
            out.set_exception(CancelledError("the Dask task was cancelled"))
        elif (exc := inner.exception()) is not None:
            out.set_exception(exc)
        else:
            out.set_result(inner.result())


class DaskExecutor(Executor):
    """Dask's own ``concurrent.futures`` adapter (``Client.get_executor()``), with its
    Futures settled off the event loop; closes only the cluster it started.

    Cancelling a returned Future cancels the Dask task (Dask forgets it; a Python
    function already running in a worker thread runs on until the worker stops).
    """

    def __init__(self, config: DaskConfig):
        dask = require("dask", "dask", "dask")
        distributed = require("distributed", "dask", "dask")
        self._cluster = None
        self._scratch = None
        # Worker loss is retried by the orchestrator (WorkflowComponent.retries), so Dask's
        # own re-runs are off by default: a killed worker fails the component at once.
        settings = {"distributed.scheduler.allowed-failures": config.allowed_failures}
        if not (config.address or config.scheduler_file):
            self._scratch = tempfile.TemporaryDirectory(prefix="simai-dask-")
            settings["temporary-directory"] = self._scratch.name
        with dask.config.set(settings):
            if config.scheduler_file:
                self.client = distributed.Client(
                    scheduler_file=config.scheduler_file, timeout=config.connect_timeout
                )
            elif config.address:
                self.client = distributed.Client(config.address, timeout=config.connect_timeout)
            else:
                # Every server of the cluster on loopback; the HTTP servers (dashboard and
                # /health of scheduler and workers) on ephemeral ports; the workers' scratch
                # space private to this run and removed with it.
                self._cluster = distributed.LocalCluster(
                    local_directory=self._scratch.name,
                    n_workers=config.max_workers,
                    threads_per_worker=config.threads_per_worker,
                    processes=config.processes,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    worker_dashboard_address="127.0.0.1:0",
                    scheduler_kwargs={"dashboard": config.dashboard},
                    memory_limit=config.memory_limit,
                    silence_logs=config.silence_logs,
                )
                self.client = distributed.Client(self._cluster)
        self._pool = self.client.get_executor(pure=False)
        self._lock = threading.Lock()
        self._closed = False
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._settler = threading.Thread(
            target=_settle_outbox, args=(self._outbox,), name="simai-dask-settle", daemon=True
        )
        self._settler.start()

    def places_tasks(self) -> bool:
        """`PlacesTasks`: the engine's workers are the slots of local components."""
        return True

    def engine_address(self) -> str:
        """The scheduler's address (``tcp://host:port``): where the driver's peers are."""
        return self.client.scheduler.address

    def submit(self, fn, /, *args, **kwargs) -> Future:
        import cloudpickle

        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        # A cloudpickle payload: functions of files loaded by path (workflow files'
        # ``tasks.py:fn``) go by value; Dask's pickler would import them by name.
        inner = self._pool.submit(_call_pickled, cloudpickle.dumps((fn, args, kwargs)))
        out: Future = Future()
        out.add_done_callback(lambda f: f.cancelled() and inner.cancel())
        inner.add_done_callback(lambda f: self._outbox.put((out, f)))
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=wait and not cancel_futures)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        if self._scratch is not None:
            self._scratch.cleanup()
        self._outbox.put(None)


class DaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "dask"
    address: str | None = Field(
        default=None, description="existing scheduler, e.g. tcp://127.0.0.1:8786"
    )
    scheduler_file: str | None = Field(
        default=None,
        description="existing scheduler's file (dask scheduler --scheduler-file PATH), as "
        "job scripts share it on a common file system; instead of address",
    )
    max_workers: int | None = Field(default=2, ge=1, description="LocalCluster workers")
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = True
    dashboard: bool = False
    memory_limit: str | float | None = "auto"
    allowed_failures: int = Field(default=0, ge=0)
    silence_logs: int = 50  # logging.CRITICAL: failures are reported by the orchestrator
    connect_timeout: str = "30s"

    @model_validator(mode="after")
    def _one_scheduler(self) -> DaskConfig:
        if self.address and self.scheduler_file:
            raise ValueError("give address or scheduler_file, not both")
        return self

    def get_executor(self) -> DaskExecutor:
        return DaskExecutor(self)
