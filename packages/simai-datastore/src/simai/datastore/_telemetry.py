"""Spans for DataStore operations through opentelemetry-api only (no SDK here).

``start_span`` without making the span current keeps the cost of an operation
low when no SDK is configured (a no-op span); attributes are only computed
when the span records.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.trace import Status, StatusCode

_tracer = trace.get_tracer("simai.datastore")
_UNKNOWN = object()


# Reading os.environ costs ~1 µs a call (get_tracer_provider() does, while no
# provider is set): look at the provider variable first, and at the environment
# variable only once. (opentelemetry reads that variable lazily, so a process
# that sets it after importing us and never asks for the provider itself would
# lose our spans: an unusual order, and nothing else breaks.)
_ENV_PROVIDER = OTEL_PYTHON_TRACER_PROVIDER in os.environ


def _sdk_configured() -> bool:
    # Until an SDK (simai-profiling, the application) installs a provider, the
    # global one is a proxy and every span would be a no-op: skip the work.
    if not isinstance(_tracer, trace.ProxyTracer):
        return True
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _ENV_PROVIDER:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class _Off:
    def is_recording(self) -> bool:
        return False


_OFF = contextlib.nullcontext(_Off())


def op_span(op: str, key: str | None, nbytes: int | None, backend: str):
    """``with op_span(...) as span:`` a ``datastore.<op>`` span (a no-op without an SDK)."""
    if not _sdk_configured():
        return _OFF
    return _span(op, key, nbytes, backend)


@contextlib.contextmanager
def _span(op: str, key: str | None, nbytes: int | None, backend: str) -> Iterator[trace.Span]:
    span = _tracer.start_span(f"datastore.{op}")
    if span.is_recording():
        span.set_attribute("simai.backend", backend)
        if key is not None:
            span.set_attribute("simai.key", key)
        if nbytes is not None:
            span.set_attribute("simai.bytes", nbytes)
    try:
        yield span
    except BaseException as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()
