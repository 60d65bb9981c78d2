"""OpenTelemetry SDK set-up for a simai run, across processes and MPI ranks.

How one trace is formed:

* :func:`start_run` installs (once per process) a :class:`~opentelemetry.sdk.trace.TracerProvider`
  whose tracers parent every span that has no parent under the run's root span — so
  spans from thread-pool workers, which do not inherit context, still join the tree.
* It exports ``SIMAI_PROFILING_DIR``, ``SIMAI_PROFILING_TRACEPARENT`` (W3C) and
  ``OTEL_PYTHON_TRACER_PROVIDER=simai``. The last one is opentelemetry-api's own hook: a
  child process (spawned, forkserver, ``mpiexec`` rank, a Dask worker started later;
  a Ray worker too, though Ray skips its exit hooks so it must flush itself)
  whose code merely calls ``trace.get_tracer(...)`` loads our provider through the
  ``opentelemetry_tracer_provider`` entry point, configured from those variables. No
  simai layer has to import this package.
* Forked children inherit the provider; the span files are named per pid at write
  time and a multiprocessing finalizer flushes them before the child's ``os._exit``.
* Every process appends finished spans as JSON lines to ``spans/<host>-<pid>.jsonl``.
  Times are epoch nanoseconds, the one clock base of a node.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing.util
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from simai.profiling._node import ENV_SAMPLE

__all__ = [
    "ENV_DIR",
    "ENV_OTLP",
    "ENV_SERVICE",
    "ENV_TRACEPARENT",
    "JsonLinesSpanExporter",
    "Run",
    "configure_from_env",
    "current_run",
    "detect_rank",
    "start_run",
]

ENV_DIR = "SIMAI_PROFILING_DIR"
ENV_TRACEPARENT = "SIMAI_PROFILING_TRACEPARENT"
ENV_SERVICE = "SIMAI_PROFILING_SERVICE"
ENV_OTLP = "SIMAI_PROFILING_OTLP_ENDPOINT"
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER"
_PROVIDER_NAME = "simai"  # entry point in group opentelemetry_tracer_provider

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "RANK")
_HOST = socket.gethostname()
_MAX_QUEUE = 1 << 16


def detect_rank() -> int | None:
    """The MPI (or torchrun) rank of this process from the launcher's environment."""
    for var in _RANK_VARS:
        value = os.environ.get(var)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


# --------------------------------------------------------------------------- export


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to ``<directory>/<host>-<pid>.jsonl``.

    The file name is taken at each export, not at construction, so a forked child
    writes its own file instead of interleaving with its parent's.
    """

    def __init__(self, directory: str | os.PathLike[str], service: str = "simai") -> None:
        self.directory = Path(directory)
        self.service = service

    def path(self) -> Path:
        return self.directory / f"{_HOST}-{os.getpid()}.jsonl"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        lines = [json.dumps(_span_to_dict(s, self.service), default=str) for s in spans]
        self.directory.mkdir(parents=True, exist_ok=True)
        # One write per batch in append mode: concurrent writers never share a file,
        # and a crash loses at most the batch in flight.
        with self.path().open("a") as f:
            f.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _span_to_dict(span: ReadableSpan, service: str) -> dict[str, Any]:
    ctx = span.get_span_context()
    attrs = dict(span.attributes or {})
    parent = span.parent
    status = span.status
    return {
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()},
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "status": status.status_code.name,
        "status_description": status.description,
        "host": _HOST,
        "pid": os.getpid(),
        "rank": detect_rank(),
        "thread_id": attrs.pop("thread.id", 0),
        "thread_name": attrs.pop("thread.name", ""),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "service": service,
    }


class _RunSpanProcessor(SpanProcessor):
    """Our one processor per provider: it holds the run's state and forwards finished
    spans to the active run's sinks.

    An SDK provider cannot drop a processor once added, so runs that follow each other
    in one process swap what this forwards to instead.
    """

    def __init__(self) -> None:
        self.sinks: tuple[SpanProcessor, ...] = ()
        self.root_context: SpanContext | None = None
        self.run_dir: Path | None = None
        self.configured_pid: int | None = None

    def activate(
        self, run_dir: Path, sinks: tuple[SpanProcessor, ...], root: SpanContext | None
    ) -> None:
        self.shutdown()
        self.sinks, self.root_context, self.run_dir = sinks, root, run_dir
        self.configured_pid = os.getpid()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if not self.sinks:
            return
        # OpenTelemetry records no thread; the Perfetto lanes and the timeline need it.
        span.set_attribute("thread.id", threading.get_native_id())
        span.set_attribute("thread.name", threading.current_thread().name)
        for sink in self.sinks:
            sink.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for sink in self.sinks:
            sink.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(sink.force_flush(timeout_millis) for sink in self.sinks)

    def shutdown(self) -> None:
        """End the run here: flush and close the sinks, forget the run."""
        sinks, self.sinks = self.sinks, ()
        self.root_context = self.run_dir = self.configured_pid = None
        for sink in sinks:
            sink.shutdown()


class _RunSampler(Sampler):
    """Records while a run is active in this process, or when someone else added a
    processor to our provider; otherwise costs what the API's no-op costs."""

    def __init__(self, provider: _SimaiTracerProvider) -> None:
        self._provider = provider

    def should_sample(self, parent_context, trace_id, name, *args, **kwargs) -> SamplingResult:
        if self._provider.run_processor.sinks or self._provider.external_processors:
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, *args, **kwargs)
        return ALWAYS_OFF.should_sample(parent_context, trace_id, name, *args, **kwargs)

    def get_description(self) -> str:
        return "SimaiRunSampler"


# --------------------------------------------------------------------------- provider


class _RunTracer(trace.Tracer):
    """Delegates to the SDK tracer, giving parentless spans the run's root as parent."""

    def __init__(self, delegate: trace.Tracer, processor: _RunSpanProcessor) -> None:
        self._delegate = delegate
        self._processor = processor

    def _context(self, context: otel_context.Context | None) -> otel_context.Context | None:
        root = self._processor.root_context
        if root is None or trace.get_current_span(context).get_span_context().is_valid:
            return context
        return trace.set_span_in_context(NonRecordingSpan(root), context)

    def start_span(self, name, context=None, *args, **kwargs):
        return self._delegate.start_span(name, self._context(context), *args, **kwargs)

    def start_as_current_span(self, name, context=None, *args, **kwargs):
        return self._delegate.start_as_current_span(name, self._context(context), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # resource, sampler, ... of the SDK tracer
        return getattr(self._delegate, name)


class _SimaiTracerProvider(TracerProvider):
    def __init__(self, service: str) -> None:
        self.run_processor = _RunSpanProcessor()
        self.external_processors = 0
        resource = Resource.create(
            {
                "service.name": service,
                "host.name": _HOST,
                "process.pid": os.getpid(),
                "simai.rank": -1 if (rank := detect_rank()) is None else rank,
            }
        )
        super().__init__(sampler=_RunSampler(self), resource=resource)
        super().add_span_processor(self.run_processor)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        # An application (or a test) exporting spans its own way: sample for it too.
        super().add_span_processor(span_processor)
        self.external_processors += 1

    def get_tracer(self, *args, **kwargs) -> trace.Tracer:
        delegate = super().get_tracer(*args, **kwargs)
        if isinstance(delegate, trace.NoOpTracer):  # OTEL_SDK_DISABLED=true
            return delegate
        return _RunTracer(delegate, self.run_processor)


def provider_from_env() -> TracerProvider:
    """Entry point ``opentelemetry_tracer_provider: simai``, loaded by opentelemetry-api
    in child processes where ``OTEL_PYTHON_TRACER_PROVIDER=simai``."""
    provider = _SimaiTracerProvider(os.environ.get(ENV_SERVICE, "simai"))
    _attach_from_env(provider.run_processor)
    return provider


_lock = threading.RLock()


class _ForkHook:
    registered = False


_FORK_HOOK = _ForkHook()  # multiprocessing keeps after-fork callbacks by weak reference


def _install(service: str) -> tuple[TracerProvider, _RunSpanProcessor]:
    """The process-wide provider and our processor on it.

    Ours is installed when none is set yet. When the application installed its own SDK
    provider first, our processor joins it: the run's files get every span, though
    parentless spans outside the thread that started the run form their own traces.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(_SimaiTracerProvider(service))
        current = trace.get_tracer_provider()  # ours, or another thread's
    if isinstance(current, _SimaiTracerProvider):
        return current, current.run_processor
    if isinstance(current, TracerProvider):
        processor = getattr(current, "_simai_run_processor", None)
        if processor is None:
            processor = _RunSpanProcessor()
            current.add_span_processor(processor)
            current._simai_run_processor = processor  # type: ignore[attr-defined]
        return current, processor
    raise RuntimeError(
        f"the installed tracer provider ({type(current).__name__}) is not an OpenTelemetry "
        "SDK provider, so simai.profiling cannot record into it; call start_run or "
        "configure_from_env before anything calls trace.set_tracer_provider"
    )


def _sinks(run_dir: Path, service: str, otlp_endpoint: str | None) -> tuple[SpanProcessor, ...]:
    sinks: list[SpanProcessor] = [
        # A tight loop of kernel calls can end thousands of spans before the export
        # thread gets the GIL; the SDK's default queue (2048) would drop them silently.
        BatchSpanProcessor(
            JsonLinesSpanExporter(run_dir / "spans", service),
            max_queue_size=_MAX_QUEUE,
            schedule_delay_millis=500,
        )
    ]
    if otlp_endpoint:
        sinks.append(BatchSpanProcessor(_otlp_exporter(otlp_endpoint)))
    return tuple(sinks)


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from simai.profiling._deps import require

    otlp = require(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "otlp",
        "the OTLP exporter",
        package="opentelemetry-exporter-otlp",
    )
    return otlp.OTLPSpanExporter(endpoint=endpoint)


def _attach_from_env(processor: _RunSpanProcessor) -> bool:
    """Point ``processor`` at the run named by the environment; False when there is none."""
    run_dir = os.environ.get(ENV_DIR)
    if not run_dir:
        return False
    carrier = {"traceparent": os.environ.get(ENV_TRACEPARENT, "")}
    ctx = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
    root = ctx.get_span_context()
    service = os.environ.get(ENV_SERVICE, "simai")
    with _lock:
        sinks = _sinks(Path(run_dir), service, os.environ.get(ENV_OTLP))
        processor.activate(Path(run_dir), sinks, root if root.is_valid else None)
    _register_child_flush()
    try:
        _sample_this_node(Path(run_dir), service)
    except Exception as exc:  # a child's spans matter more than its node's samples
        import logging

        logging.getLogger("simai.profiling").warning("node sampler not started: %s", exc)
    return True


def _sample_this_node(run_dir: Path, service: str) -> None:
    """On a node the run's driver is not on, the first process of the run samples it."""
    from simai.profiling._node import claim_node, resolve_interval

    try:
        interval = resolve_interval(None)
    except ValueError:
        return  # the driver already refused this setting
    trace_id = os.environ.get(ENV_TRACEPARENT, "").split("-")
    if interval <= 0 or len(trace_id) != 4 or not run_dir.is_dir():
        return
    if not claim_node(run_dir, trace_id[1]):
        return
    hooks = _Hooks(run_dir, service, interval, None, sampling_only=True)
    # Ranks on this node are siblings under the launcher's proxy, not our children.
    hooks.start(_NodeRun(run_dir, os.getppid() if detect_rank() is not None else None))
    atexit.register(hooks.stop, None)


class _NodeRun:
    def __init__(self, run_dir: Path, sampler_root_pid: int | None) -> None:
        self.run_dir = run_dir
        self.sampler_root_pid = sampler_root_pid


class _Hooks:
    """The run's plugins and its node sampler (see simai.profiling.protocols)."""

    def __init__(
        self,
        run_dir: Path,
        service: str,
        interval: float,
        plugins: str | Sequence[str] | None,
        sampling_only: bool = False,
    ) -> None:
        from simai.profiling.registry import get_plugin, resolve_plugins

        self.run_dir = run_dir
        self.service = service
        self.interval = interval
        self.names = resolve_plugins(
            plugins if plugins is None or isinstance(plugins, str) else list(plugins)
        )
        self.notes: list[str] = []
        self.plugins: list[Any] = []
        self.sampler: Any = None
        self.sampling_only = sampling_only
        for name in self.names:
            try:
                self.plugins.append(get_plugin(name))
            except Exception as exc:
                self._failed(name, "load", exc)

    def _failed(self, name: str, hook: str, exc: BaseException) -> None:
        import logging

        logging.getLogger("simai.profiling").warning(
            "profiling plugin %r failed in %s: %s", name, hook, exc
        )
        self.notes.append(f"plugin {name}: {hook} failed ({type(exc).__name__}: {exc})")

    def start(self, run: Any) -> None:
        from simai.profiling.protocols import SamplingPlugin

        started = []
        for plugin in self.plugins:
            if self.sampling_only and not isinstance(plugin, SamplingPlugin):
                continue
            try:
                plugin.start(run)
                started.append(plugin)
            except Exception as exc:
                self._failed(plugin.name, "start", exc)
        self.plugins = started
        samplers = [p for p in started if isinstance(p, SamplingPlugin)]
        if self.interval > 0 and samplers:
            from simai.profiling.sampler import NodeSampler

            try:
                self.sampler = NodeSampler(self.run_dir, samplers, self.interval, self.service)
            except OSError as exc:  # e.g. a metrics folder we may not write: spans go on
                self._failed("sampler", "start", exc)
            else:
                self.sampler.start()
        elif self.interval <= 0:
            self.notes.append("resources: not sampled (sampling off)")

    def stop(self, run: Any) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            for name, error in self.sampler.errors.items():
                self.notes.append(f"plugin {name}: sample failed ({error})")
        for plugin in self.plugins:
            try:
                plugin.stop(run)
            except Exception as exc:
                self._failed(plugin.name, "stop", exc)
            if note := getattr(plugin, "note", None):
                self.notes.append(note)

    def meta(self) -> dict[str, Any]:
        sampler = self.sampler
        return {
            "plugins": self.names,
            "sample_interval_s": self.interval,
            "sampler": None
            if sampler is None
            else {"ticks": sampler.ticks, "cpu_s": sampler.cpu_s, "wall_s": sampler.wall_s},
            "notes": self.notes,
        }


def _flush_provider() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


def _register_child_flush() -> None:
    # A multiprocessing child started by fork/forkserver leaves through os._exit, which
    # skips atexit: flush from multiprocessing's own exit hook instead.
    if multiprocessing.parent_process() is not None:
        multiprocessing.util.Finalize(None, _flush_provider, exitpriority=100)
    if not _FORK_HOOK.registered:
        _FORK_HOOK.registered = True
        multiprocessing.util.register_after_fork(
            _FORK_HOOK,
            lambda _hook: multiprocessing.util.Finalize(None, _flush_provider, exitpriority=100),
        )


def configure_from_env() -> TracerProvider | None:
    """Join the run named by ``SIMAI_PROFILING_DIR`` from a child process or MPI rank.

    Idempotent, and a cheap no-op returning ``None`` when the variable is absent.
    Usually unnecessary: opentelemetry-api already loads the simai provider in children
    of a run when their code first calls ``trace.get_tracer``. Call it when a process
    must flush to the run without having created a tracer first, or after changing the
    environment by hand.
    """
    if not os.environ.get(ENV_DIR):
        return None
    with _lock:
        provider, processor = _install(os.environ.get(ENV_SERVICE, "simai"))
        joined = processor.run_dir == Path(os.environ[ENV_DIR]) and processor.sinks
        if not (joined and processor.configured_pid == os.getpid()):
            _attach_from_env(processor)
    return provider


# --------------------------------------------------------------------------- the run


class Run:
    """A profiled run: its root span is open from :func:`start_run` until :meth:`end`.

    Use as a context manager. ``trace_id`` (hex) names the one trace every process of
    the run writes to; ``copy_bandwidth_mbps`` is the node's ``np.copyto`` bandwidth
    measured at the start (``None`` when disabled).
    """

    def __init__(
        self,
        run_dir: Path,
        provider: TracerProvider,
        processor: _RunSpanProcessor,
        root: trace.Span,
        service_name: str,
        copy_bandwidth_mbps: float | None,
        otlp_endpoint: str | None,
    ) -> None:
        self.run_dir = run_dir
        self.service_name = service_name
        self.copy_bandwidth_mbps = copy_bandwidth_mbps
        self.root_span = root
        ctx = root.get_span_context()
        self.trace_id = f"{ctx.trace_id:032x}"
        self.root_span_id = f"{ctx.span_id:016x}"
        self.traceparent = f"00-{self.trace_id}-{self.root_span_id}-01"
        self.otlp_endpoint = otlp_endpoint
        self._provider = provider
        self._processor = processor
        self._context_token: object | None = None
        self._saved_env: dict[str, str | None] = {}
        self._ended = False
        self._pid = os.getpid()
        self._hooks: _Hooks | None = None

    @property
    def spans_dir(self) -> Path:
        return self.run_dir / "spans"

    @property
    def env(self) -> dict[str, str]:
        """The variables a child process needs to join this run (already in ``os.environ``
        while the run is active; pass them on explicitly to a launcher that scrubs it)."""
        env = {
            ENV_DIR: str(self.run_dir),
            ENV_TRACEPARENT: self.traceparent,
            ENV_SERVICE: self.service_name,
            _ENV_PROVIDER: _PROVIDER_NAME,
        }
        if self.otlp_endpoint:
            env[ENV_OTLP] = self.otlp_endpoint
        return env

    def flush(self) -> None:
        """Write every span ended so far in this process to its file."""
        self._provider.force_flush()

    def end(self, error: BaseException | None = None) -> None:
        """End the root span, flush, stop recording and restore the environment."""
        if self._ended or os.getpid() != self._pid:
            return
        self._ended = True
        if self._hooks is not None:
            self._hooks.stop(self)
        if error is not None:
            self.root_span.record_exception(error)
            self.root_span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
        self.root_span.end()
        if self._context_token is not None:
            with contextlib.suppress(Exception):  # ended from another thread or context
                otel_context.detach(self._context_token)
        with _lock:
            self._processor.shutdown()  # flushes the batch processors
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _write_run_json(self, end_ns=time.time_ns())
        global _CURRENT
        if _CURRENT is self:
            _CURRENT = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exc)

    def __repr__(self) -> str:
        return f"Run(run_dir={str(self.run_dir)!r}, trace_id={self.trace_id!r})"


_CURRENT: Run | None = None


def current_run() -> Run | None:
    """The run started by :func:`start_run` in this process, if one is active."""
    return _CURRENT


def start_run(
    run_dir: str | os.PathLike[str],
    service_name: str = "simai",
    *,
    copy_bandwidth: bool | float = True,
    otlp_endpoint: str | None = None,
    root_span_name: str = "run",
    propagate: bool = True,
    sample_interval: float | bool | None = None,
    plugins: str | Sequence[str] | None = None,
) -> Run:
    """Start recording a run into ``run_dir`` and open its root span.

    Args:
        run_dir: created if missing; spans go to ``run_dir/spans/<host>-<pid>.jsonl`` and
            the run's metadata to ``run_dir/run.json``.
        service_name: OpenTelemetry ``service.name`` of every process of the run.
        copy_bandwidth: ``True`` measures the node's ``np.copyto`` bandwidth now (a
            fraction of a second, see :func:`measure_copy_bandwidth`; the summary's
            speed-of-light reference), a number gives it in MB/s, ``False`` skips it.
        otlp_endpoint: also send spans to this OTLP/HTTP collector (extra ``otlp``).
        root_span_name: name of the root span every parentless span is parented to.
        propagate: export the environment variables through which child processes and
            MPI ranks join the run (see the module docstring).
        sample_interval: seconds between resource samples (default ``None``: the
            ``SIMAI_PROFILING_SAMPLE`` variable, else 0.5); ``0`` or ``False`` turns the
            sampler off.
        plugins: profiling plugins to use, by name (default ``None``: the
            ``SIMAI_PROFILING_PLUGINS`` variable, else every installed plugin).

    Only one run is active per process; starting another ends the previous one.
    """
    global _CURRENT
    if _CURRENT is not None:
        _CURRENT.end()
    run_dir = Path(run_dir).resolve()
    interval = _resolve_interval(sample_interval)
    hooks = _Hooks(run_dir, service_name, interval, plugins)  # unknown names fail here
    (run_dir / "spans").mkdir(parents=True, exist_ok=True)
    if otlp_endpoint:
        _otlp_exporter(otlp_endpoint).shutdown()  # fail now, before anything runs, if missing

    if copy_bandwidth is True:
        from simai.profiling.bandwidth import measure_copy_bandwidth

        bandwidth: float | None = measure_copy_bandwidth()
    elif copy_bandwidth is False or copy_bandwidth is None:
        bandwidth = None
    else:
        bandwidth = float(copy_bandwidth)

    with _lock:
        provider, processor = _install(service_name)
        processor.activate(run_dir, _sinks(run_dir, service_name, otlp_endpoint), None)
    _register_child_flush()

    attributes: dict[str, Any] = {"simai.run_dir": str(run_dir), "service.name": service_name}
    if bandwidth is not None:
        attributes["simai.copy_bandwidth_mbps"] = bandwidth
    tracer = provider.get_tracer("simai.profiling")
    # A fresh trace, even if this process itself runs inside another run's span.
    root = tracer.start_span(root_span_name, context=otel_context.Context(), attributes=attributes)
    processor.root_context = root.get_span_context()

    run = Run(run_dir, provider, processor, root, service_name, bandwidth, otlp_endpoint)
    if not isinstance(provider, _SimaiTracerProvider):
        # A foreign provider's tracers do not know our root: make it current here.
        run._context_token = otel_context.attach(trace.set_span_in_context(root))
    if propagate:
        env = {**run.env, ENV_SAMPLE: repr(interval)}
        for key, value in env.items():
            run._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
    if interval > 0:
        from simai.profiling._node import claim_node

        claim_node(run_dir, run.trace_id)  # children on this node leave it to us
    run._hooks = hooks
    hooks.start(run)
    _write_run_json(run)
    _CURRENT = run
    return run


def _resolve_interval(value: float | bool | None) -> float:
    from simai.profiling._node import resolve_interval

    return resolve_interval(value)


def _write_run_json(run: Run, end_ns: int | None = None) -> None:
    path = run.run_dir / "run.json"
    try:
        meta = json.loads(path.read_text()) if end_ns is not None else {}
    except (OSError, json.JSONDecodeError):
        meta = {}
    if not meta or meta.get("trace_id") != run.trace_id:
        meta = {
            "trace_id": run.trace_id,
            "root_span_id": run.root_span_id,
            "service_name": run.service_name,
            "host": _HOST,
            "pid": os.getpid(),
            "start_ns": getattr(run.root_span, "start_time", None) or time.time_ns(),
            "copy_bandwidth_mbps": run.copy_bandwidth_mbps,
        }
    if run._hooks is not None:
        meta.update(run._hooks.meta())
    if end_ns is not None:
        meta["end_ns"] = end_ns
    path.write_text(json.dumps(meta, indent=2))


atexit.register(lambda: _CURRENT is not None and _CURRENT.end())
