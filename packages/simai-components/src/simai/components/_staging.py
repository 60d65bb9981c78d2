"""DataStore access shared by Simulation and AI."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

_tracer = trace.get_tracer("simai.components")


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

    def _init_datastore(self, server_info: dict | None, datastore: Any, allow_pickle: bool) -> None:
        if datastore is not None:
            self.datastore = datastore
        elif server_info is not None:
            from simai.datastore import DataStore

            self.datastore = DataStore(
                self.name, server_info=server_info, allow_pickle=allow_pickle
            )
        else:
            self.datastore = None

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
