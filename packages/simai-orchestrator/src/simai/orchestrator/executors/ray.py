"""``ray``: a local Ray on 127.0.0.1 (or an existing cluster at ``address``)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator.executors._missing import require


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
        self._options = {"num_cpus": config.task_num_cpus, "max_retries": config.max_retries}
        # Ray exports a remote function once; shipping ``fn`` as an argument instead would
        # serialise it on every call (measured: ~0.3 ms per task). The orchestrator always
        # submits the same runner, so this cache stays tiny.
        self._remotes: dict = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        remote = self._remotes.get(fn)
        if remote is None:
            if len(self._remotes) >= 256:
                self._remotes.clear()
            remote = self._remotes[fn] = self._ray.remote(fn).options(**self._options)
        ref = remote.remote(*args, **kwargs)
        fut = ref.future()
        fut._simai_engine_future = ref  # type: ignore[attr-defined]
        return fut

    def cancel_running(self, fut: Future) -> None:
        ref = getattr(fut, "_simai_engine_future", None)
        if ref is not None:
            self._ray.cancel(ref, force=True)

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
