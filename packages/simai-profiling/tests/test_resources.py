"""Resource utilisation: a real sampler thread reading real processes through psutil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace

from simai.profiling import export_run, load_samples, load_spans, start_run
from simai.profiling.resources import GpuPlugin, format_utilisation

# Spins until it has used 0.4 s of CPU (not wall time: the machine may be busy), holding
# 64 MiB it has touched, then reports its own CPU time.
BUSY_CHILD = textwrap.dedent(
    """
    import os, sys, time
    block = bytearray(64 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    while time.process_time() < 0.4:
        pass
    time.sleep(0.3)  # a sample or two after the spin, still alive
    t = os.times()
    open(sys.argv[1], "w").write(str(t.user + t.system))
    """
)


def test_a_busy_child_and_the_node_are_sampled_into_metrics_trace_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    tracer = trace.get_tracer("test")
    with (
        start_run(run_dir, copy_bandwidth=False, sample_interval=0.05, plugins=["resources"]),
        tracer.start_as_current_span("component.step", attributes={"simai.component": "sim"}),
    ):
        child = subprocess.Popen([sys.executable, "-c", BUSY_CHILD, str(tmp_path / "cpu")])
        assert child.wait(timeout=120) == 0
    child_cpu_s = float((tmp_path / "cpu").read_text())

    # One sampler for the node: only the driver wrote metrics.
    assert [p.name.split("-")[-1] for p in (run_dir / "metrics").glob("*.jsonl")] == [
        f"{os.getpid()}.jsonl"
    ]
    samples = load_samples(run_dir)
    mine = [s for s in samples if s.attributes.get("pid") == child.pid]
    cpu = [s for s in mine if s.name == "process.cpu.percent"]
    assert cpu, "the child was never sampled"
    # The CPU % integrated over time is the CPU the child says it used (the last
    # interval before it exited is not seen).
    ticks = sorted({s.time_ns for s in samples})
    interval_s = (ticks[-1] - ticks[0]) / (len(ticks) - 1) / 1e9
    integrated = sum(s.value for s in cpu) / 100 * interval_s
    assert 0.4 * child_cpu_s < integrated < 1.6 * child_cpu_s
    assert max(s.value for s in mine if s.name == "process.memory.rss") >= 64 * 2**20
    assert {s.name for s in samples} >= {
        "system.cpu.percent",
        "system.memory.used",
        "system.network.sent_bytes",
        "process.io.read_bytes",
    }

    paths = export_run(run_dir, plot=False)
    summary = json.loads(paths["summary_json"].read_text())
    res = summary["resources"]
    (sim,) = res["components"]
    assert sim["component"] == "sim" and sim["mean_cpu_pct"] is not None
    assert sim["peak_rss_bytes"] > 0 and sim["gpu_busy_pct"] is None
    child_row = next(r for r in res["processes"] if r["pid"] == child.pid)
    assert child_row["role"] == "child" and child_row["peak_rss_bytes"] >= 64 * 2**20
    assert res["nodes"] and summary["profiling"]["sampler"]["ticks"] >= 2
    assert "sim: CPU mean" in format_utilisation(summary)

    # Counter tracks in the Perfetto trace: the child's own process track.
    events = json.loads(paths["trace"].read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    counters = [e for e in events if e["ph"] == "C"]
    assert any(
        names[e["pid"]].endswith(f"pid {child.pid}") and e["name"] == "cpu %" for e in counters
    )
    assert any(e["name"] == "node cpu %" for e in counters)


def test_sampling_is_off_with_one_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMAI_PROFILING_SAMPLE", "0")
    with start_run(tmp_path / "run", copy_bandwidth=False):
        pass
    summary = json.loads(export_run(tmp_path / "run", plot=False)["summary_json"].read_text())
    assert load_samples(tmp_path / "run") == []
    assert summary["resources"]["samples"] == 0
    assert "resources: not sampled (sampling off)" in summary["notes"]


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_a_bad_sample_setting_names_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv("SIMAI_PROFILING_SAMPLE", value)
    with pytest.raises(ValueError, match=r"SIMAI_PROFILING_SAMPLE|>= 0 seconds"):
        start_run(tmp_path / "run", copy_bandwidth=False)
    assert not (tmp_path / "run").exists()


def test_gpu_plugin_without_nvml_samples_nothing_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if nvidia-ml-py were not installed
    plugin = GpuPlugin()
    plugin.start(None)
    assert list(plugin.sample()) == []
    assert "nvidia-ml-py is required" in plugin.note and "simai-profiling[cuda]" in plugin.note


@pytest.mark.gpu
def test_gpu_plugin_reads_a_real_gpu():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py (extra cuda) not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVIDIA driver: {exc}")
    plugin = GpuPlugin()
    plugin.start(None)
    try:
        samples = list(plugin.sample())
    finally:
        plugin.stop(None)
    if plugin.note:
        pytest.skip(plugin.note)
    busy = [s for s in samples if s.name == "gpu.utilization.percent"]
    assert busy and all(0 <= s.value <= 100 for s in busy)
    assert all(s.value > 0 for s in samples if s.name == "gpu.memory.used")


CHILD_ON_ITS_OWN_NODE = textwrap.dedent(
    """
    import time
    from opentelemetry import trace

    with trace.get_tracer("app").start_as_current_span("work"):
        time.sleep(0.3)
    """
)


def test_the_first_process_of_the_run_on_an_unsampled_node_samples_it(tmp_path):
    run_dir = tmp_path / "run"
    with start_run(
        run_dir, copy_bandwidth=False, sample_interval=0.05, plugins=["resources"]
    ) as run:
        # What a process on another node finds: nobody has claimed its node yet.
        (claim,) = (run_dir / "metrics").glob(f"*-{run.trace_id}.sampler")
        claim.unlink()
        child = subprocess.run([sys.executable, "-c", CHILD_ON_ITS_OWN_NODE], timeout=120)
        assert child.returncode == 0
    files = {p.stem.rsplit("-", 1)[-1] for p in (run_dir / "metrics").glob("*.jsonl")}
    assert len(files) == 2 and str(os.getpid()) in files
    (child_pid,) = files - {str(os.getpid())}
    samples = [s for s in load_samples(run_dir) if s.name == "system.cpu.percent"]
    assert len({s.time_ns for s in samples}) >= 3
    # The child joined the trace and sampled itself and the node.
    assert any(s.pid == int(child_pid) and s.name == "work" for s in load_spans(run_dir))
