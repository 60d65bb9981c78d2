"""The `Workflow` facade: compose components, launch them, get a per-component result.

A `Workflow` is a thin layer over `simai.orchestrator`: it keeps an ordered list of
`WorkflowComponent`s, optionally starts the staging server, opens the `workflow`
root span of the run, hands every component to the orchestrator and turns the
orchestrator's records into a `WorkflowResult`. Failures are values in the result,
never swallowed: `result.ok` is False and `result.failed` names them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from simai.bench import _profiling

__all__ = ["ComponentResult", "Workflow", "WorkflowResult"]

log = logging.getLogger("simai.bench")

# Parameters a component callable may declare to be given what only the workflow knows.
_INJECTED = ("server_info", "client")


@dataclasses.dataclass
class ComponentResult:
    """What happened to one component."""

    name: str
    status: str  # "pending" | "running" | "succeeded" | "failed" | "cancelled"
    start: float | None = None  # epoch seconds
    end: float | None = None
    error: str | None = None
    value: Any = None  # what the callable returned (rank 0's for remote components)
    executor: str | None = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["duration"] = self.duration
        d["value"] = _jsonable(self.value)
        return d


@dataclasses.dataclass
class WorkflowResult:
    """Per-component outcome of a launch, plus where the run's files went."""

    name: str
    components: dict[str, ComponentResult]
    start: float
    end: float
    run_dir: Path | None = None
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    error: str | None = None  # a failure of the run itself (server, orchestrator)

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.components.values())

    @property
    def failed(self) -> list[ComponentResult]:
        return [c for c in self.components.values() if not c.ok]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def __getitem__(self, name: str) -> ComponentResult:
        return self.components[name]

    def __iter__(self):
        return iter(self.components.values())

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_status(self) -> WorkflowResult:
        if not self.ok:
            raise WorkflowError(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "error": self.error,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "files": {k: str(v) for k, v in self.files.items()},
            "components": [c.to_dict() for c in self.components.values()],
        }


class WorkflowError(RuntimeError):
    def __init__(self, result: WorkflowResult):
        self.result = result
        parts = [
            f"{c.name}: {c.status}" + (f" ({c.error})" if c.error else "") for c in result.failed
        ]
        if result.error:
            parts.insert(0, result.error)
        super().__init__(f"workflow {result.name!r} failed: " + "; ".join(parts))


class _Traced:
    """Wraps a component callable so every process and rank joins the run's trace first.

    A class rather than a closure so that process pools and mpiexec ranks can pickle it.
    """

    def __init__(self, fn: Callable[..., Any], component: str):
        self.fn = fn
        self.component = component
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _profiling.configure_from_env()
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        return (_Traced, (self.fn, self.component))


class Workflow:
    """Compose components and launch them on an orchestrator.

    ``server_config`` (optional) lets the workflow own the staging server: it is
    started before the first component, its ``server_info`` is passed to every
    callable that declares a ``server_info`` parameter and was not given one, and it
    is stopped after the last component. A callable that declares ``client`` gets
    the `OrchestratorClient`, so it can submit tasks at run time.
    """

    def __init__(
        self,
        orchestrator_config: Any = None,
        system_config: Any = None,
        *,
        name: str = "workflow",
        server_config: Any = None,
        run_dir: str | os.PathLike[str] | None = None,
    ):
        from simai.orchestrator import OrchestratorConfig, SystemConfig

        self.name = name
        self.orchestrator_config = orchestrator_config or OrchestratorConfig(name="thread-pool")
        self.system_config = system_config or SystemConfig(name="local")
        self.server_config = server_config
        self.run_dir = Path(run_dir) if run_dir else None
        self._components: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._live: _LiveRun | None = None

    # ------------------------------------------------------------------ composing
    def component(
        self,
        name: str | None = None,
        type: str = "local",
        args: Mapping[str, Any] | None = None,
        dependencies: Iterable[Any] | None = None,
        **fields: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of `register_component`; returns the function unchanged."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register_component(
                name or fn.__name__, fn, type=type, args=args, dependencies=dependencies, **fields
            )
            return fn

        return decorate

    def register_component(
        self,
        name: Any,
        executable: Callable[..., Any] | str | None = None,
        type: str = "local",
        args: Mapping[str, Any] | None = None,
        dependencies: Iterable[Any] | None = None,
        **fields: Any,
    ) -> Any:
        """Add a component: a callable (run with ``**args``) or a command line.

        ``name`` may also be a ready `WorkflowComponent`. Returns the component.
        """
        from simai.orchestrator import WorkflowComponent

        if isinstance(name, WorkflowComponent):
            comp = name
        else:
            if executable is None:
                raise TypeError(
                    f"component {name!r}: give an executable (a callable or a command line)"
                )
            comp = WorkflowComponent(
                name,
                executable,
                type=type,
                args=dict(args or {}),
                dependencies=list(dependencies or []),
                **fields,
            )
        with self._lock:
            if comp.name in self._components:
                raise ValueError(f"a component named {comp.name!r} is already registered")
            self._components[comp.name] = comp
        return comp

    @property
    def components(self) -> list[Any]:
        return list(self._components.values())

    # ------------------------------------------------------------------ launching
    def launch(
        self, timeout: float | None = None, run_dir: str | os.PathLike[str] | None = None
    ) -> WorkflowResult:
        """Run every component; return when all finished (or failed). Never raises for a failed component."""
        session = _session()
        if session is not None:
            return session.launch(self, timeout=timeout, run_dir=run_dir)
        result = self._launch(timeout=timeout, run_dir=run_dir)
        if not result.ok:
            log.error("%s", WorkflowError(result))
        return result

    def launch_async(
        self, timeout: float | None = None, run_dir: str | os.PathLike[str] | None = None
    ) -> cf.Future[WorkflowResult]:
        """Start the launch in a background thread; the Future resolves to the `WorkflowResult`."""
        fut: cf.Future[WorkflowResult] = cf.Future()

        def body() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(self._launch(timeout=timeout, run_dir=run_dir))
            except BaseException as exc:
                fut.set_exception(exc)

        # Not a daemon: a launch in flight finishes (stops its servers, writes its results)
        # before the interpreter exits, instead of being cut off mid-export at shutdown.
        threading.Thread(target=body, name=f"simai-launch-{self.name}", daemon=False).start()
        return fut

    def status(self) -> list[ComponentResult]:
        """A snapshot of every component's state, usable while a launch is in flight."""
        live = self._live
        if live is None:
            return [ComponentResult(n, "pending") for n in self._components]
        return live.snapshot()

    def _launch(
        self, timeout: float | None, run_dir: str | os.PathLike[str] | None
    ) -> WorkflowResult:
        from simai.orchestrator import Orchestrator

        run_dir = Path(run_dir) if run_dir else self.run_dir
        t0 = time.time()
        live = _LiveRun(list(self._components), self.orchestrator_config.name)
        self._live = live
        error: str | None = None
        files: dict[str, Path] = {}
        prof = _profiling.open_run(run_dir, self.name, self.orchestrator_config.name)
        try:
            components = _topological(list(self._components.values()))
            with prof:
                server = orch = None
                try:
                    server_info = None
                    if self.server_config is not None:
                        server, server_info = _start_server(self.name, self.server_config)
                    orch = Orchestrator(self.system_config, self.orchestrator_config)
                    client = orch.start()
                    live.orchestrator = orch
                    for comp in components:
                        client.submit(_prepare(comp, server_info, client))
                    report = orch.wait(timeout=timeout)
                    live.timed_out, live.timeout = not report.done, timeout
                    live.not_done = set(report.not_done)
                finally:
                    # Stop even after an error, so nothing is left running; keep the first error.
                    if orch is not None:
                        try:
                            orch.stop(wait=not live.timed_out)
                        except Exception as exc:
                            error = f"stopping the orchestrator failed: {exc}"
                    if server is not None:
                        try:
                            server.stop_server()
                        except Exception as exc:
                            error = error or f"stopping the server failed: {exc}"
            files = prof.export()
        except Exception as exc:  # the run itself broke: report it with what did happen
            error = f"{type(exc).__name__}: {exc}"
            log.debug("workflow %s failed", self.name, exc_info=True)
        records = live.snapshot(final=True)
        return WorkflowResult(
            self.name,
            {r.name: r for r in records},
            t0,
            time.time(),
            run_dir=run_dir,
            files=files,
            error=error,
        )

    # ------------------------------------------------------------------ files
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Workflow:
        """Build a workflow from a YAML (or JSON) workflow file; see `simai schema`."""
        from simai.bench.config import load_workflow_spec

        spec = load_workflow_spec(path)
        return cls.from_spec(spec, base_dir=Path(path).resolve().parent)

    from_json = from_yaml

    @classmethod
    def from_spec(cls, spec: Any, base_dir: str | os.PathLike[str] | None = None) -> Workflow:
        from simai.bench._declarative import component_from_spec

        w = cls(
            spec.orchestrator.create_config(),
            spec.system.create_config(),
            name=spec.name,
            server_config=spec.server.create_config() if spec.server else None,
        )
        w.spec = spec
        for c in spec.components:
            w.register_component(component_from_spec(c, Path(base_dir or ".")))
        return w


# ---------------------------------------------------------------------- helpers


def _start_server(name: str, config: Any) -> tuple[Any, dict]:
    from simai.datastore import ServerManager

    server = ServerManager(f"{name}-server", config=config)
    server.start_server()
    try:
        return server, server.get_server_info()
    except BaseException:
        server.stop_server()
        raise


def _prepare(comp: Any, server_info: dict | None, client: Any) -> Any:
    """Fill injected parameters and wrap callables so their process joins the trace."""
    if isinstance(comp.executable, str):
        return comp
    fn = comp.executable
    args = dict(comp.args)
    params = _parameters(fn)
    if "server_info" in params and "server_info" not in args and server_info is not None:
        args["server_info"] = server_info
    if "client" in params and "client" not in args:
        args["client"] = client
    return comp.replace(executable=_Traced(fn, comp.name), args=args)


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _topological(components: list[Any]) -> list[Any]:
    """Dependencies first, otherwise in registration order (so the orchestrator sees names it knows)."""
    by_name = {c.name: c for c in components}
    done: set[str] = set()
    out: list[Any] = []

    def visit(c: Any, stack: tuple[str, ...]) -> None:
        if c.name in done:
            return
        if c.name in stack:
            raise ValueError(f"dependency cycle: {' -> '.join((*stack, c.name))}")
        for d in c.dependencies:
            if d in by_name:
                visit(by_name[d], (*stack, c.name))
        done.add(c.name)
        out.append(c)

    for c in components:
        visit(c, ())
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


class _LiveRun:
    """One launch in flight: its orchestrator's records, turned into `ComponentResult`s."""

    def __init__(self, names: list[str], executor: str):
        self.names = names
        self.executor = executor
        self.orchestrator: Any = None
        self.timed_out = False
        self.timeout: float | None = None
        self.not_done: set[str] = set()

    def snapshot(self, final: bool = False) -> list[ComponentResult]:
        records = self.orchestrator.records() if self.orchestrator is not None else {}
        # Registered components first, then those components submitted at run time.
        names = [*self.names, *(n for n in records if n not in self.names)]
        out = []
        for name in names:
            rec = records.get(name)
            if rec is None:
                status, error = (
                    ("failed", "never submitted (the run broke first)")
                    if final
                    else ("pending", None)
                )
                out.append(ComponentResult(name, status, error=error, executor=self.executor))
                continue
            status, error = rec.status, rec.error
            if final and name in self.not_done:
                status = "failed"
                error = (
                    f"timeout: not finished when the workflow's {self.timeout:g} s timeout ran out"
                )
            elif final and status in ("pending", "running"):
                status = "failed"
                error = error or "did not finish before the workflow ended"
            out.append(
                ComponentResult(
                    name=name,
                    status=status,
                    start=rec.started,
                    end=rec.ended,
                    error=error,
                    value=rec.result if status == "succeeded" else None,
                    executor=rec.executor or self.executor,
                )
            )
        return out


# ---------------------------------------------------------------------- CLI session hook
_SESSION: Any = None


def _session() -> Any:
    return _SESSION


def _set_session(session: Any) -> None:
    global _SESSION
    _SESSION = session
