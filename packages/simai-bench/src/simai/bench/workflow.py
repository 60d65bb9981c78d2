"""The `Workflow` facade: compose components, launch them, get a per-component result.

A `Workflow` is a thin layer over `simai.orchestrator`: it keeps an ordered list of
`WorkflowComponent`s, optionally starts the staging server, opens the `workflow`
root span of the run, hands every component to the orchestrator and turns the
orchestrator's records into a `WorkflowResult`. Failures are values in the result,
never swallowed: `result.ok` is False and `result.failed` names them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from simai.bench import _profiling
from simai.orchestrator._lifecycle import DEFAULT_GRACE_S, SignalScope, check_timeout

__all__ = ["ComponentResult", "LaunchObserver", "Workflow", "WorkflowResult", "observe"]

log = logging.getLogger("simai.bench")

# Parameters a component callable may declare to be given what only the workflow knows.
_INJECTED = ("server_info", "client")

# The format of result.json (WorkflowResult.to_dict) and plan.json, stored in each as
# ``schema_version``: bumped when a field is renamed, removed or changes meaning.
SCHEMA_VERSION = 1


@dataclasses.dataclass
class ComponentResult:
    """What happened to one component."""

    name: str
    # "pending" | "running" | "succeeded" | "failed" | "cancelled" (never ran) |
    # "interrupted" (was running when the run was interrupted)
    status: str
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
    # Why the run was stopped early: a signal name ("SIGTERM"), "timeout" or "interrupt()".
    interrupted: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.interrupted is None
            and all(c.ok for c in self.components.values())
        )

    @property
    def status(self) -> str:
        """``succeeded``, ``failed`` or ``interrupted``."""
        if self.interrupted is not None:
            return "interrupted"
        return "succeeded" if self.ok else "failed"

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
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "status": self.status,
            "interrupted": self.interrupted,
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
        if result.interrupted:
            parts.insert(0, f"interrupted ({result.interrupted})")
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
        from simai.profiling import configure_from_env  # a cheap no-op outside a profiled run

        configure_from_env()
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

    ``grace_period`` (seconds, default 10) bounds how long running components get to end
    after `interrupt` (or a stop signal) before they are killed; keep it shorter than
    your batch scheduler's delay between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        orchestrator_config: Any = None,
        system_config: Any = None,
        *,
        name: str = "workflow",
        server_config: Any = None,
        run_dir: str | os.PathLike[str] | None = None,
        grace_period: float = DEFAULT_GRACE_S,
    ):
        from simai.orchestrator import OrchestratorConfig, SystemConfig

        if not 0 <= grace_period <= 3600:
            raise ValueError(f"grace_period={grace_period!r}: give seconds in [0, 3600]")
        self.grace_period = float(grace_period)
        self.name = name
        self.orchestrator_config = orchestrator_config or OrchestratorConfig(name="thread-pool")
        self.system_config = system_config or SystemConfig(name="local")
        self.server_config = server_config
        self.run_dir = Path(run_dir) if run_dir else None
        self._components: dict[str, Any] = {}
        # Re-entrant: `interrupt` runs inside signal handlers on the main thread, which may
        # hold the lock at that moment.
        self._lock = threading.RLock()
        self._live: _LiveRun | None = None
        # The launch in flight (one at a time) and why it is being stopped.
        self._orchestrator: Any = None
        self._stop_reason: str | None = None
        self._signals: SignalScope | None = None
        self._resumed: dict[str, Any] = {}

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

    def plan(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Where every component would run, without running anything.

        Places the components on the allocation's nodes (``PBS_NODEFILE``, the Slurm node
        list, ``SIMAI_ORCHESTRATOR_HOSTFILE``) as the orchestrator would, and returns per
        component its wave, nodes, cores, GPUs and exact launch command; with ``path``,
        also writes that as JSON (``plan.json``). A request that can never fit raises
        ValueError naming what is missing.
        """
        from simai.orchestrator.placement import plan_launches

        plan = {
            "schema_version": SCHEMA_VERSION,
            "workflow": self.name,
            **plan_launches(self.components, self.system_config),
        }
        if path is not None:
            from simai.bench.cluster import write_plan

            write_plan(plan, path)
        return plan

    # ------------------------------------------------------------------ launching
    def launch(
        self,
        timeout: float | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        observer: LaunchObserver | None = None,
        resume: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    ) -> WorkflowResult:
        """Run every component; return when all finished (or failed). Never raises for a
        failed component.

        ``timeout`` (seconds, up to 30 days) starts `interrupt` when it runs out. Called
        on the main thread, SIGTERM, SIGINT, SIGHUP and SIGUSR1 do the same (a second
        signal skips the grace period; servers and staging are cleaned up either way);
        once the run has stopped, the signal goes on to the handler installed before
        (SIGTERM's default ends the process with status 143, SIGINT's raises
        KeyboardInterrupt). ``observer`` (default: the one set with `observe`) is told
        when the launch starts and ends.

        ``resume`` (an earlier run directory, its ``result.json``, or a dict of that
        form) re-runs only the components that did not succeed there; those that did
        are not run again and keep their recorded values (JSON values; a value that was
        not JSON-able is its ``repr``).
        """
        observer = observer if observer is not None else _observer.get()
        check_timeout(timeout, "timeout")
        self._resumed = _succeeded_in(resume) if resume is not None else {}
        self._stop_reason = None  # before the handlers: a signal from now on counts
        if observer is not None:
            run_dir = observer.launching(self, run_dir)
        with SignalScope(self._on_signal) as scope:
            self._signals = scope
            try:
                result = self._launch(timeout=timeout, run_dir=run_dir)
            finally:
                self._signals = None
            if observer is not None:
                observer.finished(self, result)
            elif not result.ok:
                log.error("%s", WorkflowError(result))
        scope.chain()
        return result

    def interrupt(self, reason: str = "interrupt()") -> None:
        """Stop the launch in flight, from any thread: cancel what has not started, end
        what runs (within ``grace_period``), stop the server, write the trace; the
        result says ``interrupted``. A second call skips the rest of the grace period."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            orch = self._orchestrator
        if orch is not None:
            orch.interrupt(self.grace_period)

    def _on_signal(self, signum: int) -> None:
        self.interrupt(signal.Signals(signum).name)

    def launch_async(
        self, timeout: float | None = None, run_dir: str | os.PathLike[str] | None = None
    ) -> cf.Future[WorkflowResult]:
        """Start the launch in a background thread; the Future resolves to the `WorkflowResult`.

        No signal handlers are installed: call `interrupt` to stop it early.
        """
        check_timeout(timeout, "timeout")
        self._resumed, self._stop_reason = {}, None
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
        from simai.orchestrator.errors import MissingMainGuardError

        run_dir = Path(run_dir) if run_dir else self.run_dir
        t0 = time.time()
        live = _LiveRun(list(self._components), self.orchestrator_config.name)
        with self._lock:
            self._live = live
        error: str | None = None
        files: dict[str, Path] = {}
        prof = _profiling.ProfiledRun(run_dir, self.name, self.orchestrator_config.name)
        try:
            with prof:
                server = orch = None
                try:
                    server_info = None
                    if self.server_config is not None and self._stop_reason is None:
                        server, server_info = _start_server(self.name, self.server_config)
                    orch = Orchestrator(self.system_config, self.orchestrator_config)
                    client = orch.start()
                    if self._signals is not None:
                        self._signals.reassert()  # Ray's start replaces SIGTERM's handler
                    live.orchestrator = orch
                    with self._lock:
                        self._orchestrator = orch
                        stopping = self._stop_reason is not None
                    if stopping:
                        if not orch.interrupted:  # (a signal handler may have done it)
                            orch.interrupt(self.grace_period)
                    else:
                        client.submit_many(
                            [
                                _restored(c, self._resumed[c.name])
                                if c.name in self._resumed
                                else _prepare(c, server_info, client)
                                for c in self._components.values()
                            ]
                        )
                        report = orch.wait(timeout=timeout, signals=False)
                        if not report.done:
                            live.timed_out, live.timeout = True, timeout
                            live.not_done = set(report.not_done)
                            self.interrupt("timeout")
                    orch.wait(signals=False)
                finally:
                    # Stop even after an error, so nothing is left running; keep the first error.
                    with self._lock:
                        self._orchestrator = None
                    if orch is not None:
                        try:
                            # A thread past its timeout or interrupted cannot be stopped:
                            # do not wait for it.
                            stuck = self._stop_reason is not None or any(
                                r.status == "failed" and r.error_type == "ComponentTimeout"
                                for r in orch.records().values()
                            )
                            orch.stop(wait=not stuck)
                        except Exception as exc:
                            error = f"stopping the orchestrator failed: {exc}"
                    if server is not None:
                        try:
                            server.stop_server()
                        except Exception as exc:
                            error = error or f"stopping the server failed: {exc}"
            files = prof.export()
        except MissingMainGuardError:
            raise  # nothing ran yet; going on would run the script's body twice
        except Exception as exc:  # the run itself broke: report it with what did happen
            error = f"{type(exc).__name__}: {exc}"
            log.debug("workflow %s failed", self.name, exc_info=True)
        live.interrupted = self._stop_reason
        records = live.snapshot(final=True)
        return WorkflowResult(
            self.name,
            {r.name: r for r in records},
            t0,
            time.time(),
            run_dir=run_dir,
            files=files,
            error=error,
            interrupted=self._stop_reason,
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


class _Recorded:
    """A component that succeeded in the run being resumed: returns its recorded value."""

    def __init__(self, value: Any):
        self.value = value

    def __call__(self) -> Any:
        return self.value


def _restored(comp: Any, value: Any) -> Any:
    return comp.replace(
        executable=_Recorded(value),
        type="local",
        args={},
        nodes=None,
        nnodes=1,
        ppn=1,
        num_gpus_per_process=0,
        cpu_affinity=None,
        gpu_affinity=None,
        return_dim=None,
        retries=0,
        timeout=None,
    )


def _succeeded_in(resume: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """name -> recorded value of the components that succeeded in an earlier run."""
    import json

    if isinstance(resume, Mapping):
        data = resume
    else:
        path = Path(resume)
        if path.is_dir():
            path = path / "result.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"resume: cannot read the earlier run's result.json: {exc}") from None
    comps = data.get("components") if isinstance(data, Mapping) else None
    if not isinstance(comps, list):
        raise ValueError("resume: not a result.json written by simai (no 'components' list)")
    return {
        c["name"]: c.get("value")
        for c in comps
        if isinstance(c, Mapping) and c.get("status") == "succeeded" and "name" in c
    }


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


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
        self.interrupted: str | None = None

    def snapshot(self, final: bool = False) -> list[ComponentResult]:
        records = self.orchestrator.records() if self.orchestrator is not None else {}
        # Registered components first, then those components submitted at run time.
        names = [*self.names, *(n for n in records if n not in self.names)]
        out = []
        for name in names:
            rec = records.get(name)
            if rec is None:
                if not final:
                    status, error = "pending", None
                elif self.interrupted:
                    status, error = "cancelled", f"not started: interrupted ({self.interrupted})"
                else:
                    status, error = "failed", "never submitted (the run broke first)"
                out.append(ComponentResult(name, status, error=error, executor=self.executor))
                continue
            status, error = str(rec.status), rec.error
            if final and name in self.not_done:
                status = status if status in ("interrupted", "cancelled") else "failed"
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


# ---------------------------------------------------------------------- observers
class LaunchObserver(Protocol):
    """Told when `Workflow.launch` starts and ends (the CLI's live display and report)."""

    def launching(self, workflow: Workflow, run_dir: Path | None) -> Path | None:
        """Called before anything starts; returns the run directory to use."""
        ...

    def finished(self, workflow: Workflow, result: WorkflowResult) -> None: ...


_observer: contextvars.ContextVar[LaunchObserver | None] = contextvars.ContextVar(
    "simai_bench_launch_observer", default=None
)


@contextlib.contextmanager
def observe(observer: LaunchObserver) -> Iterator[LaunchObserver]:
    """Within the block, `Workflow.launch` calls without an ``observer`` report to this one
    (how ``simai run script.py`` shows progress for workflows a script launches)."""
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)
