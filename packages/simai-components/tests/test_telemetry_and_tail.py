"""Spans emitted by the components, and the smaller-problem tail, seen from the outside."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from simai.components import Simulation
from simai.kernels import KernelTiming, register_kernel, unregister_kernel


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_step_kernel_and_staging_spans(spans, tmp_path):
    from simai.datastore import ServerManager, server_registry

    spans.clear()
    cfg = server_registry.create_config("filesystem", server_address=str(tmp_path / "s"))
    with ServerManager("server", config=cfg) as server:
        sim = Simulation("emu", server_info=server.get_server_info())
        sim.add_kernel("MatMulSimple2D", run_time=0.002, data_size=(32, 32))
        sim.run(2)
        sim.stage_write("k", 1)
    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name == "component.step"]
    kernels = [s for s in finished if s.name == "kernel.MatMulSimple2D"]
    assert [s.attributes["simai.step"] for s in steps] == [0, 1]
    for s, rec in zip(steps, sim.records, strict=True):
        assert s.attributes["simai.component"] == "emu"
        assert s.attributes["simai.target_s"] == pytest.approx(0.002)
        # entry to the span's end; the record runs on to run()'s return
        assert rec.inner_s < s.attributes["simai.achieved_s"] < rec.achieved_s
        assert s.attributes["simai.inner_s"] == pytest.approx(rec.inner_s)
    assert len(kernels) == 2
    assert kernels[0].attributes["simai.kernel"] == "MatMulSimple2D"
    assert kernels[0].attributes["simai.device"] == "cpu"
    assert kernels[0].parent.span_id == steps[0].context.span_id
    staging = [s for s in finished if s.name == "component.stage_write"]
    assert staging and staging[0].attributes["simai.key"] == "k"


def test_ai_spans(spans):
    from simai.components import AI

    spans.clear()
    ai = AI("net", input_dim=4, output_dim=4, neurons_per_layer=4, data_size=16, batch_size=4)
    ai.train(run_time=0.01)
    ai.infer(run_count=1)
    names = [s.name for s in spans.get_finished_spans()]
    assert "ai.train" in names and "ai.infer" in names
    train = next(s for s in spans.get_finished_spans() if s.name == "ai.train")
    assert train.attributes["simai.target_s"] == 0.01
    rec = ai.records[0]
    assert rec.inner_s < train.attributes["simai.achieved_s"] < rec.achieved_s
    assert train.attributes["simai.component"] == "net"


class _Costly:
    """A compute kernel whose cost grows with its size: 20 ms at 64x64."""

    name = "CostlyForTest"
    family = "compute"
    default_size = (64, 64)
    sizes: list[tuple[int, ...]] = []
    scale = 1.0  # multiplies every call's cost, to emulate load coming and going

    def __call__(self, device="cpu", data_size=None, dtype="float32", comm=None, **options):
        size = tuple(data_size or self.default_size)
        type(self).sizes.append(size)
        cost = 0.02 * self.scale * (size[0] * size[1]) / (64 * 64)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < cost:
            pass
        dt = time.perf_counter() - t0
        return KernelTiming(dt, dt)


@pytest.fixture
def costly():
    register_kernel(_Costly, replace=True)
    _Costly.sizes.clear()
    _Costly.scale = 1.0
    yield _Costly
    unregister_kernel("CostlyForTest")


def test_kernel_tail_runs_a_smaller_problem(costly):
    # a step shorter than one full call: the time is filled with ~1/8-size calls
    sim = Simulation("s", tail="kernel")
    sim.add_kernel("CostlyForTest", run_time=0.015)  # full calls cost 20 ms, tail calls 2.6 ms
    sim.calibrate()
    costly.sizes.clear()
    sim.run(3)
    assert all(r.kernels[0].calls == 0 for r in sim.records)
    assert sum(r.kernels[0].tail_calls for r in sim.records) >= 1
    assert set(costly.sizes) == {(23, 23)}


def test_sleep_tail_makes_no_smaller_calls(costly):
    sim = Simulation("s")  # tail="sleep" is the default
    sim.add_kernel("CostlyForTest", run_time=0.05)
    sim.calibrate()
    costly.sizes.clear()
    sim.run(2)
    assert set(costly.sizes) == {(64, 64)}
    assert all(r.kernels[0].tail_calls == 0 for r in sim.records)


def test_estimate_from_a_loaded_period_is_refreshed(costly):
    """Calibrated while calls cost 20 ms, a 6 ms step makes no call; once the load is
    gone the Simulation notices (by recalibrating between steps) and calls resume."""
    sim = Simulation("s")
    sim.add_kernel("CostlyForTest", run_time=0.006)
    sim.calibrate()
    costly.scale = 0.025  # calls now cost 0.5 ms
    sim.run(15)
    calls = [r.kernels[0].calls for r in sim.records]
    assert calls[:10] == [0] * 10
    assert sum(calls[10:]) >= 5  # ~11 calls fit in each step now
