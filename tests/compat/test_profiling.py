"""Item 9: Timer and Orchestrator.get_profile_store() on top of simai's trace."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.compat


def test_timer_duration_is_the_span_in_the_trace(tmp_path):
    from simai.bench.compat.profiling import Timer
    from simai.profiling import load_spans, start_run

    with (
        start_run(tmp_path, copy_bandwidth=False, sample_interval=0, plugins=[]),
        Timer("stage_io") as t,
    ):
        time.sleep(0.01)
    assert t.get_duration() == t.duration >= 0.01
    assert t.end - t.start == t.duration
    (span,) = [s for s in load_spans(tmp_path) if s.name == "stage_io"]
    assert abs((span.end_ns - span.start_ns) / 1e9 - t.duration) < 1e-6


def test_timer_start_stop_form_and_misuse():
    from simai.bench.compat.profiling.timer import Timer

    t = Timer("step")
    with pytest.raises(RuntimeError, match="before start_timing"):
        t.stop_timing()
    t.start_timing()
    time.sleep(0.001)
    t.stop_timing()
    assert t.get_duration() >= 0.001


def test_get_profile_store_is_accepted_by_components(tmp_path, monkeypatch):
    from simai.bench.compat import Simulation
    from simai.bench.compat.config import OchestratorConfig, SystemConfig
    from simai.bench.compat.orchestrator import Orchestrator

    monkeypatch.setenv("SIMAI_PROFILING_DIR", str(tmp_path))
    orch = Orchestrator(SystemConfig(name="local", ncpus=2), OchestratorConfig(name="thread-pool"))
    orch.start()
    try:
        store = orch.get_profile_store()
        assert store == {"type": "simai-trace", "run_dir": str(tmp_path)}
        sim = Simulation(profile_store=True, profile_server_info=store)
        sim.add_kernel("MatMulSimple2D", run_count=1, data_size=(8, 8))
        assert sim.run() > 0
    finally:
        orch.stop()
