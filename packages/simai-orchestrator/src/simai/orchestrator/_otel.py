"""Is a real tracer provider installed? Asked per component, through the public API only."""

from __future__ import annotations

import os

from opentelemetry import trace

_NOT_RECORDING = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def tracing_enabled() -> bool:
    """True when spans would be recorded (an SDK provider is set, or named in the env)."""
    return not isinstance(trace.get_tracer_provider(), _NOT_RECORDING)


def tracer():
    """The orchestrator's tracer, or None when spans would record nothing."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, _NOT_RECORDING):
        return None
    return provider.get_tracer("simai.orchestrator")


# What a worker needs to join the run: opentelemetry-api's provider hook and the run's
# own settings. Not every OTEL_* variable: exporter headers can carry credentials, and
# tasks travel through engines' schedulers in the clear.
_PROVIDER_HOOK = "OTEL_PYTHON_TRACER_PROVIDER"
_RUN_PREFIX = "SIMAI_PROFILING_"


def telemetry_env() -> dict[str, str]:
    """The run's telemetry settings in this process's environment."""
    return {k: v for k, v in os.environ.items() if k == _PROVIDER_HOOK or k.startswith(_RUN_PREFIX)}


def join(env: dict[str, str]):
    """Join the run's trace from a worker started before the run (a Dask worker of a
    scheduler file, a Ray cluster, Parsl blocks): take the run's settings into this
    process's environment, where opentelemetry-api's documented hook
    (``OTEL_PYTHON_TRACER_PROVIDER``) loads the provider they name. Returns the tracer,
    or None when they name none."""
    os.environ.update(env)
    return tracer()


def flush(timeout_ms: int = 5000) -> None:
    """Export this process's finished spans now (SDK providers have ``force_flush``)."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)
