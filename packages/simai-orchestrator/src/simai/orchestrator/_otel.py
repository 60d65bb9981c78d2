"""Is a real tracer provider installed? Asked per component, so it must cost nothing."""

from __future__ import annotations

import os

from opentelemetry import trace

# opentelemetry builds a provider named in the environment lazily, on first use.
_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_UNKNOWN = object()


def tracing_enabled() -> bool:
    """True when spans would be recorded (an SDK provider is set).

    ``trace.get_tracer_provider()`` reads ``os.environ`` on every call while no provider
    is set (about 4 µs, twice per component); the module global it consults is read
    directly when present, and the public call is the fallback.
    """
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _FROM_ENV:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def tracer():
    """The orchestrator's tracer, or None when spans would record nothing."""
    if not tracing_enabled():
        return None
    return trace.get_tracer_provider().get_tracer("simai.orchestrator")
