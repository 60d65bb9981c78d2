"""DataStore access shared by Simulation and AI."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from opentelemetry import trace

_tracer = trace.get_tracer("simai.components")


def _private_dir(path: Path) -> Path:
    """``path`` as a directory of ours, mode 0700; refuses a link or another user's directory."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by this user; not logging there")
    return path


class NoDataStoreError(RuntimeError):
    """A staging call on a component that was created without ``server_info``."""


class StagingMixin:
    """``stage_write``/``stage_read``/... forwarded to ``self.datastore``.

    ``datastore`` is None when the component was built without ``server_info`` (and
    without ``datastore=``): staging then raises ``NoDataStoreError`` saying so,
    instead of silently writing under the current directory as the original did.
    """

    name: str
    datastore: Any

    def _init_datastore(
        self,
        server_info: dict | None,
        datastore: Any,
        allow_pickle: bool,
        is_colocated: bool = False,
    ) -> None:
        if datastore is not None:
            self.datastore = datastore
        elif server_info is not None:
            from simai.datastore import DataStore

            self.datastore = DataStore(
                self.name,
                server_info=server_info,
                allow_pickle=allow_pickle,
                is_colocated=is_colocated,
            )
        else:
            self.datastore = None

    def _init_logger(self, enabled: Any, level: Any, rank: int) -> None:
        """SimAI-Bench's ``logging=``/``log_level=``: ``self.logger``, one per component and rank.

        It writes ``logs/<name>.<rank>.log`` under the run directory (``SIMAI_PROFILING_DIR``,
        set by ``Workflow.launch(run_dir=...)``/``simai run``), else under the current
        directory as the original did; ``logging=False`` leaves ``self.logger`` None.
        """
        self.logger: logging.Logger | None = None
        if not enabled:
            return
        level = logging.INFO if level is None else level
        logger = logging.getLogger(f"simai.components.{type(self).__name__}.{self.name}.r{rank}")
        logger.setLevel(level)
        root = Path(os.environ.get("SIMAI_PROFILING_DIR") or os.getcwd())
        path = _private_dir(root / "logs") / f"{self.name}.{rank}.log"
        if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(
                logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
            )
            logger.addHandler(handler)
        self.logger = logger

    def flush_logger(self) -> None:
        """Flush what ``self.logger`` has written (SimAI-Bench's ``flush_logger``)."""
        logger = getattr(self, "logger", None)
        for handler in logger.handlers if logger is not None else ():
            handler.flush()

    def _store(self, op: str) -> Any:
        if self.datastore is None:
            raise NoDataStoreError(
                f"{type(self).__name__} {self.name!r} has no DataStore, so {op}() cannot run: "
                "create it with server_info=ServerManager(...).get_server_info() "
                "(or datastore=DataStore(...))"
            )
        return self.datastore

    def _staged(self, op: str, key: Any, *args: Any, **kwargs: Any) -> Any:
        store = self._store(op)
        with _tracer.start_as_current_span(
            f"component.{op}",
            attributes={"simai.component": self.name, "simai.key": str(key)},
        ):
            return getattr(store, op)(key, *args, **kwargs)

    def stage_write(self, key: str, value: Any, **kwargs: Any) -> Any:
        """Write ``value`` under ``key`` to the staging backend."""
        return self._staged("stage_write", key, value, **kwargs)

    def stage_read(self, key: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Read ``key``, waiting up to ``timeout`` seconds for it to appear (None: the store's default)."""
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self._staged("stage_read", key, **kwargs)

    def poll_staged_data(self, key: str, **kwargs: Any) -> bool:
        return self._staged("poll_staged_data", key, **kwargs)

    def clean_staged_data(self, key: str, **kwargs: Any) -> Any:
        return self._staged("clean_staged_data", key, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        return self._store("send").send(*args, **kwargs)

    def receive(self, *args: Any, **kwargs: Any) -> Any:
        return self._store("receive").receive(*args, **kwargs)
