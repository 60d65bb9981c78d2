"""Spans for DataStore operations through opentelemetry-api only (no SDK here).

``start_span`` without making the span current keeps the cost of an operation
low when no SDK is configured (a no-op span); attributes are only computed
when the span records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

_tracer = trace.get_tracer("simai.datastore")
_configured = False


def _sdk_configured() -> bool:
    # Until an SDK (simai-profiling, the application) installs a provider, the
    # global one is a proxy and every span would be a no-op: skip the work. A
    # global provider can be set only once, so once seen it is cached; until then
    # the public get_tracer_provider() costs ~2 µs per operation.
    global _configured
    if _configured or not isinstance(_tracer, trace.ProxyTracer):
        return True
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    _configured = True
    return True


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
