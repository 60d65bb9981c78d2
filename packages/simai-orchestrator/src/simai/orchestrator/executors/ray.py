"""``ray``: a local Ray on 127.0.0.1 (or an existing cluster at ``address``)."""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import Executor, Future

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator.executors._missing import require


def _after(fn):
    def run_after(n, *args_and_done, **kwargs):
        # The trailing arguments are the dependencies' results, which Ray resolves (and
        # so waits for) before the task starts; the component does not see them.
        return fn(*args_and_done[:n], **kwargs)

    return run_after


def _bound(executable):
    from simai.orchestrator._runner import run_task

    def run_bound(spec):
        # The component's callable was exported once with this function; the TaskSpec
        # travels without it.
        spec.executable = executable
        return run_task(spec)

    return run_bound


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
        self._seen: dict = {}
        self._lock = threading.Lock()
        self._closed = False

    def _remote(self, fn, after: bool):
        remote = self._remotes.get((fn, after))
        if remote is None:
            if len(self._remotes) >= 256:
                self._remotes.clear()
            remote = self._ray.remote(_after(fn) if after else fn).options(**self._options)
            self._remotes[(fn, after)] = remote
        return remote

    def _export(self, fn, args, after: bool):
        """The remote function for ``fn(*args)``, and the arguments to send it.

        A component's callable inside the orchestrator's TaskSpec would be pickled with
        every task (by value for functions defined in ``__main__``: ~0.1-0.3 ms each).
        From its second use on, it is exported with the remote function instead, once;
        a callable seen once (a fresh lambda, say) keeps travelling with its task, since
        exporting costs a round trip to Ray's control store.
        """
        from simai.orchestrator._runner import TaskSpec, run_task

        if fn is run_task and len(args) == 1 and isinstance(args[0], TaskSpec):
            exe = args[0].executable
            try:
                count = self._seen.get(exe, 0) + 1
            except TypeError:  # unhashable callable
                count = 0
            if count >= 2 and callable(exe):
                remote = self._remotes.get((exe, after, "bound"))
                if remote is None:
                    if len(self._remotes) >= 256:
                        self._remotes.clear()
                    target = _bound(exe)
                    remote = self._ray.remote(_after(target) if after else target)
                    remote = remote.options(**self._options)
                    self._remotes[(exe, after, "bound")] = remote
                return remote, (dataclasses.replace(args[0], executable=None),)
            if count:
                if len(self._seen) >= 1024:
                    self._seen.clear()
                self._seen[exe] = count
        return self._remote(fn, after), args

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        remote, args = self._export(fn, args, False)
        return self._wrap(remote.remote(*args, **kwargs))

    def submit_after(self, fn, /, *args, after=(), **kwargs) -> Future:
        """`EngineDependencies`: Ray starts ``fn`` once the ObjectRefs in ``after`` exist."""
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        refs = [f._simai_engine_future for f in after]
        remote, args = self._export(fn, args, True)
        return self._wrap(remote.remote(len(args), *args, *refs, **kwargs))

    def _wrap(self, ref) -> Future:
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
