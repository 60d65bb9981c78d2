"""Reading an application's Chrome-format trace: steps and their split by category."""

from __future__ import annotations

import gzip
import json

import pytest

from simai.profiling.chrome import (
    find_steps,
    guess_step_name,
    read_chrome_events,
    split_steps,
    trace_device,
)


def handwritten_unitrace_shaped(step_ms=(10, 10, 14), begin_end=False):
    """A hand-written file shaped like Intel unitrace's Chrome output (not a recording):
    per step, a host launch call, a device kernel, a device-to-host copy of 4 MiB and an
    MPI all-reduce; the steps differ only by trailing host time."""
    host, device = {"pid": 100, "tid": 100}, {"pid": 200, "tid": 1}
    events, t = [], 0.0
    for i, ms in enumerate(step_ms):
        us = t * 1e3
        if begin_end:
            events.append(
                {"name": f"NekRS::step {i}", "ph": "B", "ts": us, **host, "cat": "cpu_op"}
            )
            events.append({"name": f"NekRS::step {i}", "ph": "E", "ts": us + ms * 1e3, **host})
        else:
            events.append(
                {
                    "name": f"NekRS::step {i}",
                    "ph": "X",
                    "ts": us,
                    "dur": ms * 1e3,
                    **host,
                    "cat": "cpu_op",
                }
            )
        events += [
            {
                "name": "zeCommandListAppendLaunchKernel",
                "cat": "cpu_op",
                "ph": "X",
                "ts": us,
                "dur": 1e3,
                **host,
            },
            {
                "name": "nekrs_axhelm",
                "cat": "gpu_op",
                "ph": "X",
                "ts": us + 1e3,
                "dur": 5e3,
                **device,
            },
            {
                "name": "zeCommandListAppendMemoryCopy(D2M)",
                "cat": "gpu_op",
                "ph": "X",
                "ts": us + 6e3,
                "dur": 1e3,
                "args": {"bytes": 4 * 2**20},
                **device,
            },
            {
                "name": "MPI_Allreduce",
                "cat": "cpu_op",
                "ph": "X",
                "ts": us + 7e3,
                "dur": 2e3,
                **host,
            },
        ]
        t += ms + 10
    return {"traceEvents": events, "displayTimeUnit": "ms"}


@pytest.mark.parametrize("form", ["json", "gz-begin-end"])
def test_handwritten_unitrace_shaped_steps_split_by_category(tmp_path, form):
    if form == "json":
        path = tmp_path / "trace.json"
        path.write_text(json.dumps(handwritten_unitrace_shaped()))
    else:
        path = tmp_path / "trace.json.gz"
        with gzip.open(path, "wt") as f:
            json.dump(handwritten_unitrace_shaped(begin_end=True), f)
    events = read_chrome_events(path)
    assert guess_step_name(events) == "NekRS::step"
    assert trace_device(events) == "xpu"
    steps = split_steps(events, "NekRS::step")
    assert [round(s.duration_s * 1e3, 6) for s in steps] == [10, 10, 14]
    for s, host_ms in zip(steps, (2, 2, 6), strict=True):
        assert s.seconds == pytest.approx(
            {"gpu": 5e-3, "memcpy": 1e-3, "communication": 2e-3, "cpu": host_ms * 1e-3}
        )
        assert sum(s.seconds.values()) == pytest.approx(s.duration_s)
        assert s.copy_bytes == 4 * 2**20


def test_an_unknown_step_name_suggests_the_trace_s_own(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(handwritten_unitrace_shaped()))
    with pytest.raises(ValueError, match=r"no event named 'NekRS::stp'.*did you mean 'NekRS::step"):
        find_steps(read_chrome_events(path), "NekRS::stp")


def test_a_file_that_is_not_a_trace_says_so(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="no 'traceEvents' list"):
        read_chrome_events(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a Chrome trace-event JSON"):
        read_chrome_events(bad)


def test_the_trace_import_plugin_summarises_traces_placed_in_the_run(tmp_path):
    from simai.profiling import FinishedRun, get_plugin

    (tmp_path / "imported").mkdir()
    (tmp_path / "imported" / "nekrs.json").write_text(json.dumps(handwritten_unitrace_shaped()))
    plugin = get_plugin("trace-import")
    assert plugin.analyse(FinishedRun(spans=[], samples=[], run_dir=tmp_path / "none")) is None
    result = plugin.analyse(FinishedRun(spans=[], samples=[], run_dir=tmp_path))
    (row,) = result.table
    assert row["trace"] == "nekrs.json" and row["step"] == "NekRS::step" and row["steps"] == 3
    assert row["median_s"] == pytest.approx(0.010)
    assert row["gpu_share"] == pytest.approx(15 / 34) and row["cpu_share"] == pytest.approx(10 / 34)
