"""``ray``: a local Ray on 127.0.0.1 (or an existing cluster at ``address``)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator import _lifecycle
from simai.orchestrator.executors._missing import require
from simai.orchestrator.executors.process import _call_pickled


class RayExecutor(Executor):
    """Runs tasks as Ray remote functions; shuts Ray down only if it started it."""

    def __init__(self, config: RayConfig):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = require("ray", "ray", "ray")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs = dict(
                include_dashboard=False,
                log_to_driver=config.log_to_driver,
                configure_logging=True,
                logging_level="error",
            )
            if config.address:
                ray.init(address=config.address, **kwargs)
            else:
                ray.init(
                    num_cpus=config.max_workers,
                    _node_ip_address="127.0.0.1",
                    object_store_memory=config.object_store_memory,
                    **kwargs,
                )
            self._started = True
            # Ray's dashboard and runtime-env agents survive a SIGKILL of this process.
            _lifecycle.start_reaper()
        # One remote function, exported once; each call travels as a cloudpickle payload,
        # so functions of files loaded by path (workflow files' ``tasks.py:fn``) go by
        # value, as on every other executor (Ray's own pickler imports them by name).
        self._call = ray.remote(_call_pickled).options(
            num_cpus=config.task_num_cpus, max_retries=config.max_retries
        )
        self._lock = threading.Lock()
        self._refs: dict[Future, object] = {}
        self._closed = False

    def places_tasks(self) -> bool:
        """`PlacesTasks`: the engine's workers are the slots of local components."""
        return True

    def engine_address(self) -> str:
        """The cluster's GCS address (``host:port``): where the driver's peers are."""
        return self._ray.get_runtime_context().gcs_address

    def submit(self, fn, /, *args, **kwargs) -> Future:
        import cloudpickle

        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        ref = self._call.remote(cloudpickle.dumps((fn, args, kwargs)))
        fut = ref.future()
        with self._lock:
            self._refs[fut] = ref
        fut.add_done_callback(self._forget)
        return fut

    def _forget(self, fut: Future) -> None:
        with self._lock:
            self._refs.pop(fut, None)

    def cancel_running(self, futures) -> None:
        """`CancelsRunning`: ``ray.cancel(force=True)`` ends the worker running each task."""
        with self._lock:
            refs = [self._refs[f] for f in futures if f in self._refs]
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or Ray is shutting down
                pass

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._started:
            self._ray.shutdown()


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "ray"
    address: str | None = Field(
        default=None, description="existing cluster, e.g. 127.0.0.1:6379 or auto"
    )
    max_workers: int | None = Field(default=None, ge=1, description="num_cpus of a local Ray")
    task_num_cpus: float = Field(default=1, ge=0)
    max_retries: int = Field(
        default=0, ge=0, description="Ray's own re-runs of a dead worker's task"
    )
    object_store_memory: int | None = Field(default=256 * 1024**2, ge=75 * 1024**2)
    log_to_driver: bool = False

    def get_executor(self) -> RayExecutor:
        return RayExecutor(self)
