"""DataStore operations emit `datastore.<op>` spans with key, bytes and backend."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from simai.datastore import DataStore, ServerManager, StagedDataTimeout, _telemetry


@pytest.fixture
def spans(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # a private provider: the global one belongs to simai-profiling / the application
    monkeypatch.setattr(_telemetry, "_tracer", provider.get_tracer("simai.datastore"))
    return exporter


def test_spans_carry_key_bytes_backend(spans, tmp_path):
    with ServerManager("fs", type="filesystem", server_address=str(tmp_path / "s")) as sm:
        ds = DataStore("t", server_info=sm.get_server_info())
        a = np.zeros(1000, dtype=np.float32)
        ds.stage_write("u_0", a)
        ds.stage_read("u_0")
        with pytest.raises(StagedDataTimeout):
            ds.stage_read("missing", timeout=0)
    got = {s.name: s for s in spans.get_finished_spans() if s.attributes.get("simai.key") == "u_0"}
    assert set(got) == {"datastore.stage_write", "datastore.stage_read"}
    for s in got.values():
        assert s.attributes["simai.backend"] == "filesystem"
        assert s.attributes["simai.bytes"] >= a.nbytes
    failed = [s for s in spans.get_finished_spans() if s.attributes.get("simai.key") == "missing"]
    assert failed and not failed[0].status.is_ok
