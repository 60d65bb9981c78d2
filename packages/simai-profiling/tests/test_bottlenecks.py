"""The critical path and time shares, checked against spans with known times."""

from __future__ import annotations

import pytest

from simai.profiling import SpanRecord, critical_path, summarize, time_shares
from simai.profiling.bottlenecks import format_critical_path

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
_ids = iter(range(1, 10_000))


def span(name, start_ms, end_ms, parent=None, component=None, events=()):
    attrs = {"simai.component": component} if component else {}
    return SpanRecord(
        name=name,
        start_ns=T0 + int(start_ms * MS),
        end_ns=T0 + int(end_ms * MS),
        trace_id="a" * 32,
        span_id=f"{next(_ids):016x}",
        parent_id=None if parent is None else parent.span_id,
        attributes=attrs,
        events=[{"name": n, "time_ns": T0 + int(t * MS), "attributes": {}} for n, t in events],
    )


@pytest.fixture
def workflow():
    """sim (0-1000 ms) -> train (ready at 1000, started at 1200: no free worker);
    a side component 'probe' runs alone and is on no path."""
    root = span("workflow", 0, 2000)
    sim = span(
        "orchestrator.component",
        0,
        1000,
        root,
        "sim",
        [("submitted", 0), ("ready", 0), ("started", 0)],
    )
    k = span("kernel.MatMulSimple2D", 0, 600, sim)
    w = span("datastore.stage_write", 600, 900, sim)
    train = span(
        "orchestrator.component",
        1200,
        2000,
        root,
        "train",
        [("submitted", 0), ("ready", 1000), ("started", 1200)],
    )
    p = span("datastore.poll", 1200, 1300, train)
    a = span("ai.train", 1300, 1800, train)
    r = span("datastore.stage_read", 1800, 1900, train)
    probe = span(
        "orchestrator.component",
        100,
        400,
        root,
        "probe",
        [("submitted", 0), ("ready", 0), ("started", 100)],
    )
    return [root, sim, k, w, train, p, a, r, probe]


def test_the_critical_path_names_the_chain_and_its_operations(workflow):
    cp = critical_path(workflow)
    assert cp["makespan_s"] == pytest.approx(2.0)
    assert [c["component"] for c in cp["components"]] == ["sim", "train"]
    sim, train = cp["components"]
    assert sim["compute_s"] == pytest.approx(0.6) and sim["staging_s"] == pytest.approx(0.3)
    assert sim["overhead_s"] == pytest.approx(0.1)
    assert sim["top_operations"][0] == {
        "operation": "kernel.MatMulSimple2D",
        "category": "compute",
        "total_s": pytest.approx(0.6),
    }
    assert train["start_s"] == pytest.approx(1.0) and train["duration_s"] == pytest.approx(1.0)
    assert train["waiting_for_resources_s"] == pytest.approx(0.2)
    assert train["waiting_for_data_s"] == pytest.approx(0.1)
    assert train["compute_s"] == pytest.approx(0.5) and train["staging_s"] == pytest.approx(0.1)
    assert cp["by_category"]["compute"] == pytest.approx(1.1)
    assert cp["bottleneck"] == {
        "component": "sim",
        "category": "compute",
        "seconds": pytest.approx(0.6),
    }
    text = format_critical_path({"critical_path": cp})
    assert "sim: 1.000 s" in text and "bottleneck: sim compute" in text


def test_time_shares_add_up_per_component(workflow):
    rows = {r["component"]: r for r in time_shares(workflow)}
    assert set(rows) == {"sim", "train", "probe"}
    train = rows["train"]
    assert train["total_s"] == pytest.approx(1.0)
    assert train["waiting_s"] == pytest.approx(0.3)  # 0.1 for data + 0.2 for a worker
    assert train["compute_share"] == pytest.approx(0.5)
    for row in rows.values():
        shares = [row[f"{k}_share"] for k in ("compute", "staging", "waiting", "overhead")]
        assert sum(shares) == pytest.approx(1.0)
    assert rows["probe"]["overhead_share"] == pytest.approx(0.3 / 0.4)


def test_summary_carries_the_fields_the_report_reads(workflow):
    summary = summarize(workflow)
    assert summary["critical_path"]["components"][-1]["component"] == "train"
    assert {r["component"] for r in summary["time_shares"]} == {"sim", "train", "probe"}
    # No samples given: every component is listed, with nothing measured.
    assert {r["component"]: r["mean_cpu_pct"] for r in summary["resources"]["components"]} == {
        "sim": None,
        "train": None,
        "probe": None,
    }


def test_a_component_ready_at_once_starts_the_path(workflow):
    # Without its dependency wait, train no longer follows sim.
    train = workflow[4]
    train.events = [e if e["name"] != "ready" else {**e, "time_ns": T0} for e in train.events]
    assert [c["component"] for c in critical_path(workflow)["components"]] == ["train"]


def _in(parent, name, start_ms, end_ms, component=None, **where):
    """A span under ``parent``, or at the top of a trace of its own when ``parent`` is None
    (a component that did not continue the orchestrator's trace)."""
    s = span(name, start_ms, end_ms, parent, component)
    s.trace_id = parent.trace_id if parent is not None else "b" * 32
    s.host, s.pid, s.thread_id = where.get("at", ("node0", 10, 2))
    return s


@pytest.fixture
def steering():
    """The steering mini-app's shape: task 'steer' submits task 'dock-r0-l7' from inside
    itself; that task runs a Simulation named 'dock7' (its own name on its spans). Task
    'dock-r0-l8' runs 'dock8', whose spans start a trace of their own in the task's thread.
    """
    driver = ("node0", 10, 1)
    root = _in(None, "workflow", 0, 3000, at=driver)
    root.trace_id = "a" * 32
    steer = _in(root, "orchestrator.component", 0, 3000, "steer", at=driver)
    steer.events = [{"name": n, "time_ns": T0, "attributes": {}} for n in ("submitted", "ready")]
    dock = _in(steer, "orchestrator.component", 100, 1100, "dock-r0-l7")
    step = _in(dock, "component.step", 150, 950, "dock7")
    kernel = _in(step, "kernel.MatMulSimple2D", 150, 850)  # 0.7 s compute
    write = _in(step, "datastore.stage_write", 850, 950)  # 0.1 s staging
    poll = _in(dock, "datastore.poll", 1000, 1050, "dock7")  # 0.05 s waiting
    # Same worker thread, later: a trace of its own, found by the task's time window.
    other = _in(steer, "orchestrator.component", 1200, 2200, "dock-r0-l8")
    other_step = _in(None, "component.step", 1250, 2150, "dock8")
    other_kernel = _in(other_step, "kernel.MatMulSimple2D", 1250, 2050)
    # Another thread in the same window: not the task's work.
    elsewhere = _in(None, "kernel.MatMulSimple2D", 1300, 1400, "dock9", at=("node0", 10, 3))
    return [
        root,
        steer,
        dock,
        step,
        kernel,
        write,
        poll,
        other,
        other_step,
        other_kernel,
        elsewhere,
    ]


def test_work_inside_a_submitted_task_counts_for_the_task_not_its_inner_name(steering):
    rows = {r["component"]: r for r in time_shares(steering)}
    assert "dock7" not in rows and "dock8" not in rows
    dock = rows["dock-r0-l7"]
    assert dock["total_s"] == pytest.approx(1.0)
    assert dock["compute_s"] == pytest.approx(0.7)
    assert dock["staging_s"] == pytest.approx(0.1)
    assert dock["waiting_for_data_s"] == pytest.approx(0.05)
    assert dock["overhead_s"] == pytest.approx(0.15)
    assert rows["dock-r0-l8"]["compute_s"] == pytest.approx(0.8)
    assert rows["dock9"]["compute_s"] == pytest.approx(0.1)  # other thread: its own row


def test_the_critical_path_credits_a_submitted_task_with_its_work(steering):
    steer = steering[1]
    steer.end_ns = T0 + 1100 * MS  # steer ends first: the path ends at the last dock task
    steering[0].end_ns = T0 + 2200 * MS
    cp = critical_path(steering)
    names = [c["component"] for c in cp["components"]]
    assert names[-1] == "dock-r0-l8" and not {"dock7", "dock8"} & set(names)
    last = cp["components"][-1]
    assert last["compute_s"] == pytest.approx(0.8)
    assert last["top_operations"][0]["operation"] == "kernel.MatMulSimple2D"


def test_the_timeline_draws_a_task_and_its_work_on_one_lane(steering):
    from simai.profiling.report import task_lanes

    lane_of, labels = task_lanes(steering)
    dock8_task, dock8_step = steering[7], steering[8]
    assert lane_of[id(dock8_step)] == lane_of[id(dock8_task)]
    assert not [label for label in labels if label.startswith(("dock7", "dock8"))]


def test_utilisation_is_grouped_by_the_task_like_the_time_breakdown(steering):
    from simai.profiling import Sample
    from simai.profiling.resources import summarize_resources

    # One CPU sample of the worker process during task dock-r0-l7.
    sample = Sample(
        "process.cpu.percent",
        80.0,
        {"host": steering[2].host, "pid": steering[2].pid},
        time_ns=T0 + 500 * MS,
        unit="%",
    )
    rows = {r["component"] for r in summarize_resources(steering, [sample])["components"]}
    assert "dock-r0-l7" in rows
    assert not {"dock7", "dock8"} & rows
