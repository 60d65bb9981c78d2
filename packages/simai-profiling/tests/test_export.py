"""Exporters checked against spans with known start and end times."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest

from simai.profiling import (
    SpanRecord,
    export_run,
    load_spans,
    plot_timeline,
    summarize,
    write_chrome_trace,
    write_summary_csv,
)
from simai.profiling.records import SCHEMA_VERSION

S = 1_000_000_000  # ns
T0 = 1_700_000_000 * S
TRACE = "ab" * 16


def span(name, start_s, end_s, *, sid, parent="root", pid=100, rank=None, thread=1, **attrs):
    return SpanRecord(
        name=name,
        start_ns=T0 + int(start_s * S),
        end_ns=T0 + int(end_s * S),
        trace_id=TRACE,
        span_id=f"{sid:016x}",
        parent_id=None
        if parent is None
        else (f"{0:016x}" if parent == "root" else f"{parent:016x}"),
        attributes=attrs,
        host="node0",
        pid=pid,
        rank=rank,
        thread_id=thread,
        thread_name=f"T{thread}",
    )


@pytest.fixture
def spans():
    """A run: root; component 'sim' on rank 0 with 4 writes of 1..4 s and 1e6..4e6 bytes;
    component 'train' on rank 1 with 2 reads; a scheduling event on the sim step."""
    root = span("run", 0, 20, sid=0, parent=None, **{"simai.copy_bandwidth_mbps": 2.0})
    sim = span("component.step", 0, 12, sid=1, rank=0, pid=200, **{"simai.component": "sim"})
    sim.events.append({"name": "submitted", "time_ns": T0, "attributes": {}})
    writes = []
    start = 0.5
    for i, dur in enumerate((1, 2, 3, 4)):
        attrs = {
            "simai.bytes": (i + 1) * 1_000_000,
            "simai.backend": "filesystem",
            "simai.key": f"k{i}",
        }
        writes.append(
            span(
                "datastore.stage_write",
                start,
                start + dur,
                sid=10 + i,
                parent=1,
                rank=0,
                pid=200,
                **attrs,
            )
        )
        start += dur
    train = span("component.step", 1, 9, sid=2, rank=1, pid=201, **{"simai.component": "train"})
    reads = [
        span(
            "datastore.stage_read",
            2,
            3,
            sid=20,
            parent=2,
            rank=1,
            pid=201,
            **{"simai.bytes": 8_000_000, "simai.backend": "redis"},
        ),
        span(
            "datastore.stage_read",
            4,
            7,
            sid=21,
            parent=2,
            rank=1,
            pid=201,
            **{"simai.bytes": 4_000_000, "simai.backend": "redis"},
        ),
    ]
    return [root, sim, *writes, train, *reads]


def _row(rows, **match):
    (row,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return row


def test_summary_numbers_match_the_known_durations(spans):
    summary = summarize(spans)
    writes = _row(summary["operations"], operation="datastore.stage_write")
    assert writes["backend"] == "filesystem"
    assert writes["count"] == 4
    assert writes["total_s"] == pytest.approx(10.0)
    assert writes["mean_s"] == pytest.approx(2.5)
    assert writes["p50_s"] == pytest.approx(2.5)
    assert writes["p95_s"] == pytest.approx(3.85)  # linear: 3 + 0.85 * (4 - 3)
    assert writes["bytes"] == 10_000_000
    assert writes["mb_per_s"] == pytest.approx(1.0)  # 10 MB in 10 s
    assert writes["pct_of_copy"] == pytest.approx(50.0)  # of the root's 2 MB/s

    reads = _row(summary["operations"], operation="datastore.stage_read")
    assert reads["backend"] == "redis" and reads["mb_per_s"] == pytest.approx(3.0)  # 12 MB / 4 s

    steps = _row(summary["operations"], operation="component.step")
    assert (
        steps["bytes"] is None
        and steps["mb_per_s"] is None
        and steps["total_s"] == pytest.approx(20)
    )

    # The writes carry no component attribute: they count for their parent's.
    sim_writes = _row(summary["components"], component="sim", operation="datastore.stage_write")
    assert sim_writes["count"] == 4 and sim_writes["bytes"] == 10_000_000
    train_reads = _row(summary["components"], component="train", operation="datastore.stage_read")
    assert train_reads["count"] == 2

    assert {(r["backend"], r["operation"]) for r in summary["speed_of_light"]} == {
        ("filesystem", "datastore.stage_write"),
        ("redis", "datastore.stage_read"),
    }
    assert _row(summary["speed_of_light"], backend="redis")["pct_of_copy"] == pytest.approx(150.0)
    run = summary["run"]
    assert run["spans"] == 9 and run["processes"] == 3 and run["ranks"] == [0, 1]
    assert run["wall_s"] == pytest.approx(20.0) and run["copy_bandwidth_mbps"] == 2.0
    json.dumps(summary)  # JSON-ready as documented


def test_explicit_copy_bandwidth_overrides_the_recorded_one(spans):
    summary = summarize(spans, copy_bandwidth_mbps=4.0)
    assert _row(summary["operations"], operation="datastore.stage_write")[
        "pct_of_copy"
    ] == pytest.approx(25.0)


def test_summary_csv_holds_every_row(spans, tmp_path):
    summary = summarize(spans)
    path = write_summary_csv(summary, tmp_path / "summary.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(summary["operations"]) + len(summary["components"])
    row = _row(rows, table="operation", operation="datastore.stage_write")
    assert float(row["mean_s"]) == pytest.approx(2.5) and row["bytes"] == "10000000"
    assert float(row["mb_per_s"]) == pytest.approx(1.0)
    assert _row(rows, table="operation", operation="component.step")["bytes"] == ""
    assert (
        _row(rows, table="component", component="train", operation="datastore.stage_read")["count"]
        == "2"
    )


def test_chrome_trace_is_a_valid_perfetto_file(spans, tmp_path):
    # An extra span overlapping a write without nesting (async work on the same thread).
    spans.append(
        span(
            "datastore.stage_read",
            1.0,
            2.0,
            sid=30,
            parent=1,
            rank=0,
            pid=200,
            **{"simai.bytes": 1, "simai.backend": "filesystem"},
        )
    )
    path = write_chrome_trace(spans, tmp_path / "trace.json")
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == len(spans)
    for e in complete:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["ts"] >= 0 and e["dur"] >= 0 and isinstance(e["name"], str)
    process_names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    thread_names = {
        (e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"
    }
    assert {e["pid"] for e in complete} <= set(process_names)
    assert {(e["pid"], e["tid"]) for e in complete} <= set(thread_names)
    assert sorted(process_names.values()) == [
        "main · pid 100",
        "rank 0 · pid 200",
        "rank 1 · pid 201",
    ]
    assert any(name.startswith("sim · T1") for name in thread_names.values())

    # Perfetto needs every pair of events on one track to nest or be disjoint.
    tracks = defaultdict(list)
    for e in complete:
        tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for intervals in tracks.values():
        for a0, a1 in intervals:
            for b0, b1 in intervals:
                assert a1 <= b0 or b1 <= a0 or (a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1)
    assert any(name.endswith("#2") for name in thread_names.values())

    instants = [e for e in events if e["ph"] == "i"]
    assert [e["name"] for e in instants] == ["submitted"]
    write = next(e for e in complete if e["name"] == "datastore.stage_write")
    assert write["args"]["simai.component"] == "sim" and write["args"]["simai.bytes"] == 1_000_000
    assert data["otherData"]["trace_ids"] == [TRACE]

    back = load_spans(path)
    assert sorted((s.span_id, s.start_ns, s.end_ns) for s in back) == sorted(
        (s.span_id, s.start_ns, s.end_ns) for s in spans
    )


def test_timeline_png_is_written_and_readable(spans, tmp_path):
    import matplotlib.image
    import numpy as np

    path = plot_timeline(spans, tmp_path / "out" / "timeline.png", title="test")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert np.unique(image.reshape(-1, image.shape[2]), axis=0).shape[0] > 5  # not a blank canvas


def test_export_run_from_every_kind_of_source(spans, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "spans").mkdir(parents=True)
    with (run_dir / "spans" / "node0-200.jsonl").open("w") as f:
        for s in spans:
            f.write(json.dumps(s.to_dict()) + "\n")
    (run_dir / "run.json").write_text(json.dumps({"copy_bandwidth_mbps": 10.0}))

    written = export_run(run_dir)
    assert set(written) == {"trace", "summary_json", "summary_csv", "timeline"}
    assert all(p.parent == run_dir and p.stat().st_size > 0 for p in written.values())
    summary = json.loads(written["summary_json"].read_text())
    assert summary["run"]["copy_bandwidth_mbps"] == 10.0  # run.json wins over the span attribute
    # Both files say which format they are in, so runs of different versions can be told apart.
    trace = json.loads(written["trace"].read_text())
    assert summary["schema_version"] == trace["schema_version"] == SCHEMA_VERSION
    assert isinstance(trace["traceEvents"], list)

    from_trace = export_run(written["trace"], tmp_path / "again", png=tmp_path / "t.png")
    assert from_trace["timeline"] == tmp_path / "t.png" and (tmp_path / "t.png").stat().st_size > 0
    again = json.loads(from_trace["summary_json"].read_text())
    assert again["operations"] == summarize(spans, 10.0)["operations"]  # run.json beside it

    from_jsonl = export_run(run_dir / "spans" / "node0-200.jsonl", tmp_path / "j", plot=False)
    assert "timeline" not in from_jsonl


def test_bad_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directory"):
        export_run(tmp_path / "missing")
    (tmp_path / "empty" / "spans").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no spans"):
        export_run(tmp_path / "empty")
    (tmp_path / "other.json").write_text(json.dumps({"traceEvents": [{"ph": "X", "name": "x"}]}))
    with pytest.raises(ValueError, match="only traces written by simai"):
        load_spans(tmp_path / "other.json")


def test_a_truncated_last_line_loses_only_that_span(spans, tmp_path):
    path = tmp_path / "spans.jsonl"
    lines = [json.dumps(s.to_dict()) for s in spans]
    path.write_text("\n".join(lines) + "\n" + lines[0][:25])
    assert len(load_spans(path)) == len(spans)
    path.write_text(lines[0][:25] + "\n" + "\n".join(lines))
    with pytest.raises(ValueError, match="not a span record"):
        load_spans(path)


def test_without_matplotlib_the_error_names_the_extra(spans, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"simai-profiling\[plot\]"):
        plot_timeline(spans, tmp_path / "t.png")
