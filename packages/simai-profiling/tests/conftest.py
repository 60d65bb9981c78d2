from __future__ import annotations

import pytest
from opentelemetry import trace

from simai.profiling.sampler import ENV_SAMPLE
from simai.profiling.tracing import ENV_DIR, ENV_TRACEPARENT


def reset_tracer_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uninstall the process's tracer provider for one test.

    opentelemetry-api lets a provider be set once per process and offers no public way to
    undo it; its own test utilities (reset_trace_globals) reset these two private names.
    This is the one place we touch them: monkeypatch fails on a name an upgrade removed,
    and test_tracing's test_otel_reset_still_uninstalls_a_provider fails on one it
    stopped reading.
    """
    from opentelemetry.util._once import Once

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.fixture
def reset_otel(monkeypatch):
    """``reset_otel()`` uninstalls the tracer provider again, mid-test."""
    return lambda: reset_tracer_provider(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_tracing_globals(monkeypatch):
    """Each test starts in a process with no tracer provider installed yet, whatever
    another package's tests installed before; the previous globals come back afterwards."""
    reset_tracer_provider(monkeypatch)
    for var in (ENV_DIR, ENV_TRACEPARENT, ENV_SAMPLE, "OTEL_PYTHON_TRACER_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
