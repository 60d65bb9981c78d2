"""``dragon``: a process pool on the DragonHPC runtime (run the program with ``dragon``)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future

from pydantic import BaseModel, ConfigDict, Field

from simai.orchestrator.executors._missing import require
from simai.orchestrator.executors.process import _call_pickled


def in_dragon_runtime() -> bool:
    return any(k in os.environ for k in ("DRAGON_DEFAULT_PD", "DRAGON_INF_PD", "DRAGON_MODE"))


class DragonExecutor(Executor):
    """``concurrent.futures`` over Dragon's multiprocessing Pool (dragon.native.Pool)."""

    def __init__(self, processes: int):
        import multiprocessing

        import dragon  # noqa: F401  (registers the "dragon" start method)

        # Dragon installs its multiprocessing replacements when it becomes the start
        # method, as every program under `dragon` does first.
        if multiprocessing.get_start_method(allow_none=True) != "dragon":
            multiprocessing.set_start_method("dragon", force=True)
        self._pool = multiprocessing.Pool(processes)
        self._lock = threading.Lock()
        self._closed = False

    def places_tasks(self) -> bool:
        """`PlacesTasks`: the engine's workers are the slots of local components."""
        return True

    def submit(self, fn, /, *args, **kwargs) -> Future:
        import cloudpickle

        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        out: Future = Future()
        out.set_running_or_notify_cancel()

        def ok(value):
            if not out.done():
                out.set_result(value)

        def err(exc):
            if not out.done():
                out.set_exception(exc)

        self._pool.apply_async(
            _call_pickled, (cloudpickle.dumps((fn, args, kwargs)),), callback=ok, error_callback=err
        )
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if wait and not cancel_futures:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()


class DragonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "dragon"
    max_workers: int = Field(default=2, ge=1)

    def get_executor(self) -> DragonExecutor:
        require("dragon", "dragon", "dragon")
        if not in_dragon_runtime():
            raise RuntimeError(
                "the dragon executor needs the Dragon runtime: start the program with "
                "`dragon your_script.py` (pip install 'simai-orchestrator[dragon]')"
            )
        return DragonExecutor(self.max_workers)
