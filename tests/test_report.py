"""The HTML report: what it shows for a run and a comparison, `simai report`, and a real
headless chromium opening it (marker ``browser``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bokeh", reason="the report needs bokeh: pip install 'simai-profiling[report]'")

from simai.profiling.records import SpanRecord
from simai.profiling.report import (
    NOT_MEASURED,
    REPORT_SCHEMA_VERSION,
    load_run,
    run_metrics,
    span_category,
    write_report,
)

SECTIONS = (
    "fingerprint",
    "components",
    "timeline",
    "staging",
    "emulation",
    "breakdown",
    "resources",
)
T0 = 1_800_000_000_000_000_000


def _recorded_run(
    run_dir: Path,
    *,
    wall_s: float = 2.0,
    write_s: float = 0.001,
    errors_pct: tuple[float, ...] = (1.0, -2.0, 3.0, 10.0),
    ok: bool = True,
    summary_extra: dict | None = None,
) -> Path:
    """A run directory with spans of known times, as `simai run` lays it out."""
    spans_dir = run_dir / "spans"
    spans_dir.mkdir(parents=True)
    root = SpanRecord(
        "workflow",
        T0,
        T0 + int(wall_s * 1e9),
        span_id="r" * 16,
        pid=1,
        attributes={"simai.executor": "thread-pool", "simai.copy_bandwidth_mbps": 8000.0},
    )
    comp = SpanRecord(
        "orchestrator.component",
        T0,
        T0 + int(wall_s * 1e9),
        span_id="c" * 16,
        parent_id=root.span_id,
        pid=1,
        thread_name="w0",
        attributes={"simai.component": "sim"},
        events=[{"name": "ready", "time_ns": T0}, {"name": "started", "time_ns": T0 + 10**7}],
    )
    spans = [root, comp]
    t = T0 + 10**7
    for i, err in enumerate(errors_pct):
        target = 0.1
        achieved = target * (1 + err / 100)
        spans.append(
            SpanRecord(
                "component.step",
                t,
                t + int(achieved * 1e9),
                span_id=f"s{i:015d}",
                parent_id=comp.span_id,
                pid=1,
                thread_name="w0",
                attributes={
                    "simai.component": "sim",
                    "simai.target_s": target,
                    "simai.achieved_s": achieved,
                },
            )
        )
        t += int(achieved * 1e9)
        spans.append(
            SpanRecord(
                "datastore.stage_write",
                t,
                t + int(write_s * 1e9),
                span_id=f"w{i:015d}",
                parent_id=comp.span_id,
                pid=1,
                thread_name="w0",
                attributes={
                    "simai.bytes": 1_000_000,
                    "simai.backend": "filesystem",
                    "simai.key": f"u{i}",
                },
            )
        )
        t += int(write_s * 1e9)
        spans.append(
            SpanRecord(
                "datastore.poll",
                t,
                t + 10**5,
                span_id=f"p{i:015d}",
                parent_id=comp.span_id,
                pid=1,
                thread_name="w0",
                attributes={"simai.backend": "filesystem"},
            )
        )
    (spans_dir / "vm-1.jsonl").write_text("".join(json.dumps(s.to_dict()) + "\n" for s in spans))
    (run_dir / "run.json").write_text(json.dumps({"copy_bandwidth_mbps": 8000.0, "host": "vm"}))
    result = {
        "name": "flow",
        "ok": ok,
        "start": T0 / 1e9,
        "end": T0 / 1e9 + wall_s,
        "duration": wall_s,
        "error": None,
        "components": [
            {
                "name": "sim",
                "status": "succeeded" if ok else "failed",
                "start": T0 / 1e9,
                "end": T0 / 1e9 + wall_s,
                "duration": wall_s,
                "executor": "thread-pool",
                "error": None if ok else "ValueError: boom",
                "value": None,
            }
        ],
    }
    (run_dir / "result.json").write_text(json.dumps(result))
    if summary_extra is not None:
        from simai.profiling.export import summarize
        from simai.profiling.records import load_spans

        summary = summarize(load_spans(run_dir), 8000.0) | summary_extra
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _section(doc: str, section: str) -> str:
    start = doc.index(f'<section id="{section}"')
    return doc[start : doc.index("</section>", start)]


def test_report_shows_the_runs_measurements(tmp_path):
    run = _recorded_run(tmp_path / "run", write_s=0.002)
    out = write_report([run], tmp_path / "report.html")
    doc = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}"' in doc
    assert f'content="{REPORT_SCHEMA_VERSION}"' in doc and "simai-schema-version" in doc
    # duration 2 s, 1 attempt (counted from the orchestrator's span), no root cause
    assert (
        "<td>sim</td><td>succeeded</td><td>thread-pool</td><td>0</td><td>2</td><td>1</td><td></td>"
        in (_section(doc, "components"))
    )
    # 1 MB in 2 ms = 500 MB/s; the copy reference 8,000 MB/s -> 6.25 %.
    staging = _section(doc, "staging")
    assert "<td>500</td>" in staging and "<td>6.25</td>" in staging
    # |errors| 1, 2, 3, 10 % -> median 2.5 %.
    emulation = _section(doc, "emulation")
    assert "<td>2.5</td>" in emulation
    # Self-contained: BokehJS inline, nothing fetched from the network.
    assert not re.search(r'<script[^>]+src="https?://', doc)
    assert not re.search(r'<link[^>]+href="https?://', doc)
    assert out.stat().st_size < 10e6


def test_report_shows_the_profiling_breakdown_critical_path_and_utilisation(tmp_path):
    # time_shares and critical_path as simai.profiling's summarize computes them from
    # the spans; utilisation as its sampler would record it (no sampler ran here).
    resources = {"components": [{"component": "sim", "mean_cpu_pct": 97.0}], "samples": 4}
    run = _recorded_run(tmp_path / "run", summary_extra={"resources": resources})
    summary = json.loads((run / "summary.json").read_text())
    compute_s = next(r for r in summary["time_shares"] if r["component"] == "sim")["compute_s"]
    doc = write_report([run], tmp_path / "r.html").read_text()
    breakdown = _section(doc, "breakdown")
    assert "compute_s" in breakdown and f"<td>{compute_s:.4g}</td>" in breakdown
    assert "makespan_s" in breakdown and NOT_MEASURED not in breakdown
    assert 'class="chart"><div' in breakdown  # the stacked bars were embedded
    assert "<td>97</td>" in _section(doc, "resources")


def test_what_an_older_run_did_not_record_is_not_measured(tmp_path):
    run = _recorded_run(tmp_path / "run", summary_extra={})
    summary = json.loads((run / "summary.json").read_text())
    for field in ("time_shares", "critical_path", "resources", "notes", "analyses"):
        summary.pop(field, None)
    (run / "summary.json").write_text(json.dumps(summary))
    doc = write_report([run], tmp_path / "r.html").read_text()
    assert NOT_MEASURED in _section(doc, "breakdown")
    assert NOT_MEASURED in _section(doc, "resources")
    assert "configuration: <span" in _section(doc, "fingerprint")  # no fingerprint.json


def test_categories_keep_waits_apart_from_compute_and_staging():
    assert span_category("kernel.MatMulSimple2D") == "compute"
    assert span_category("component.step") == "compute"
    assert span_category("datastore.poll") == "wait"
    assert span_category("component.poll_staged_data") == "wait"
    assert span_category("datastore.stage_write") == "write"
    assert span_category("datastore.stage_read") == "read"
    assert span_category("datastore.delete") == "staging"
    assert span_category("orchestrator.component") == "component"


def test_comparison_marks_the_faster_run_best(tmp_path):
    slow = _recorded_run(tmp_path / "slow", wall_s=4.0, write_s=0.004)
    fast = _recorded_run(tmp_path / "fast", wall_s=2.0, write_s=0.001)
    out = write_report([slow, fast], tmp_path / "cmp.html")
    doc = out.read_text()
    cmp_section = _section(doc, "comparison")
    assert "Comparison of 2 runs" in cmp_section
    assert "best: <b>fast</b>" in cmp_section
    # The rows that differ, best value starred: wall time (lower) and MB/s (higher).
    wall_row = re.search(r"<tr><th>wall_s.*?</tr>", cmp_section).group(0)
    assert '<td class="best">2 ★</td>' in wall_row and '<td class="">4</td>' in wall_row
    rate_row = re.search(r"<tr><th>stage_write MB/s.*?</tr>", cmp_section).group(0)
    assert '<td class="best">1,000 ★</td>' in rate_row
    assert [
        m["run"]
        for m in json.loads(re.search(r'id="simai-report-data">(.*?)</script>', doc).group(1))[
            "metrics"
        ]
    ] == ["slow", "fast"]


def _rewrite(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    for k, v in fields.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data))


def test_runs_of_different_schema_versions_are_compared_and_the_report_says_so(tmp_path):
    new = _recorded_run(tmp_path / "new", summary_extra={})
    _rewrite(new / "result.json", schema_version=1)
    # As an older simai wrote it: no versions, no time breakdown.
    old = _recorded_run(tmp_path / "old", wall_s=3.0, summary_extra={})
    _rewrite(old / "summary.json", schema_version=None, time_shares=None)
    doc = write_report([new, old], tmp_path / "cmp.html").read_text()
    cmp_section = _section(doc, "comparison")
    assert "written by different simai versions" in cmp_section
    assert "<tr><td>new</td><td>1</td><td>1</td></tr>" in cmp_section
    assert "<tr><td>old</td><td>0</td><td>0</td></tr>" in cmp_section
    assert "best: <b>new</b>" in cmp_section  # the metrics both have are still compared

    # A newer format whose shape this version can still read: shown, with a warning.
    _rewrite(old / "summary.json", schema_version=99)
    doc = write_report([old], tmp_path / "old.html").read_text()
    assert "summary.json has schema_version 99, newer than this simai reads" in _section(
        doc, "fingerprint"
    )
    # One it cannot read: a clear error naming the file and its version, no traceback.
    _rewrite(old / "result.json", schema_version=99, components={"sim": "renamed"})
    with pytest.raises(ValueError, match=r"result.json has schema_version 99.*upgrade"):
        write_report([new, old], tmp_path / "cmp2.html")


def test_dynamic_tasks_and_replicas_are_one_family_in_the_comparison(tmp_path):
    run = _recorded_run(tmp_path / "run")
    result = json.loads((run / "result.json").read_text())
    sim = result["components"][0]
    result["components"] += [
        {**sim, "name": f"dock-r{r}-l{lig}", "duration": d}
        for r, lig, d in ((0, 66, 1.0), (0, 483, 2.0), (1, 103, 4.0))
    ]
    (run / "result.json").write_text(json.dumps(result))
    m = run_metrics(load_run(run))
    assert m["dock-r#-l#.count"] == 3 and m["dock-r#-l#.median_duration_s"] == 2.0
    assert m["sim.duration_s"] == 2.0 and not any("l66" in k for k in m)


def test_run_metrics_of_a_failed_run(tmp_path):
    m = run_metrics(load_run(_recorded_run(tmp_path / "bad", ok=False)))
    assert (
        m["status"] == "failed" and m["executor"] == "thread-pool" and m["backend"] == "filesystem"
    )


def test_load_run_rejects_a_directory_that_is_no_run(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        load_run(tmp_path)


def _simai(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "simai.bench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_simai_report_command(tmp_path):
    a = _recorded_run(tmp_path / "a", wall_s=3.0)
    b = _recorded_run(tmp_path / "b", wall_s=2.0)
    proc = _simai("report", str(a), str(b), "-o", str(tmp_path / "ab.html"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best: <b>b</b>" in (tmp_path / "ab.html").read_text()
    proc = _simai("report", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2 and "no such run directory" in proc.stderr


# --------------------------------------------------------------------------- real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI: apt-get install chromium)"
)


def _chromium(*args: str, url: str) -> subprocess.CompletedProcess:
    # No network for the page: a proxy that does not exist makes any fetch fail loudly.
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=10000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _open(report: Path, tmp_path: Path, shot: str) -> str:
    url = report.resolve().as_uri()
    dom = _chromium("--dump-dom", url=url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    head = html[: html.index(">", html.index("<html")) + 1]
    assert 'data-simai-js-errors="' not in head or 'data-simai-js-errors="0"' in head, head
    assert 'data-simai-status="ok"' in head, head
    png = tmp_path / shot
    proc = _chromium(f"--screenshot={png}", "--window-size=1400,2400", url=url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return html


@pytest.mark.browser
@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    report = write_report([_recorded_run(tmp_path / "run")], tmp_path / "report.html")
    html = _open(report, tmp_path, "report.png")
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    # BokehJS turned the embedded figures into rendered views.
    assert 'data-simai-charts="1"' in html

    # The sentinel does catch an error: the same page with one broken script says so.
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace("</body>", "<script>null.x;</script></body>"))
    dom = _chromium("--dump-dom", url=broken.resolve().as_uri()).stdout
    assert 'data-simai-status="error"' in dom[: dom.index("<head")]


@pytest.mark.browser
@needs_chromium
def test_comparison_report_renders_in_headless_chromium(tmp_path):
    runs = [_recorded_run(tmp_path / "slow", wall_s=4.0), _recorded_run(tmp_path / "fast")]
    report = write_report(runs, tmp_path / "cmp.html")
    html = _open(report, tmp_path, "cmp.png")
    assert '<section id="comparison"' in html and "★ best" in html


# --------------------------------------------------------------------------- PNG timeline


def _has_colour(image, hex_colour: str, tol: float = 0.02) -> bool:
    import numpy as np

    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).any())


def test_png_timeline_one_lane_per_task_and_a_10us_write_in_60s_is_visible(tmp_path):
    import matplotlib.image

    from simai.profiling import plot_timeline
    from simai.profiling.report import CATEGORIES, task_lanes

    t = T0
    root = SpanRecord("workflow", t, t + 60 * 10**9, span_id="r" * 16, pid=1)
    spans = [root]
    for i, task in enumerate(("a", "b")):
        # The orchestrator's span in the driver (pid 1), the work in a pool worker (pid 2+i).
        orch = SpanRecord(
            "orchestrator.component",
            t,
            t + 60 * 10**9,
            span_id=f"o{i:015d}",
            parent_id=root.span_id,
            pid=1,
            attributes={"simai.component": task},
        )
        step = SpanRecord(
            "component.step",
            t,
            t + 30 * 10**9,
            span_id=f"s{i:015d}",
            parent_id=orch.span_id,
            pid=2 + i,
            attributes={"simai.component": task},
        )
        poll = SpanRecord(
            "datastore.poll",
            t + 31 * 10**9,
            t + 40 * 10**9,
            span_id=f"p{i:015d}",
            parent_id=orch.span_id,
            pid=2 + i,
        )
        write = SpanRecord(
            "datastore.stage_write",
            t + 50 * 10**9,
            t + 50 * 10**9 + 10_000,
            span_id=f"w{i:015d}",
            parent_id=orch.span_id,
            pid=2 + i,
            attributes={"simai.bytes": 4096},
        )
        spans += [orch, step, poll, write]
    _, labels = task_lanes([s for s in spans if s.parent_id], spans)
    assert len(labels) == 2 and labels[0].startswith("a (") and labels[1].startswith("b (")

    image = matplotlib.image.imread(plot_timeline(spans, tmp_path / "t.png"))
    for cat in ("component", "compute", "wait", "write"):
        assert _has_colour(image, CATEGORIES[cat][1]), cat
    assert not _has_colour(image, CATEGORIES["read"][1])  # nothing read: no read colour drawn


def test_a_link_planted_where_the_report_goes_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "report.html"
    out.symlink_to(victim)
    write_report([_recorded_run(tmp_path / "run")], out)
    assert victim.read_text() == "keep me"
    assert not out.is_symlink() and out.stat().st_mode & 0o777 == 0o600


def test_without_bokeh_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bokeh", None)
    with pytest.raises(ImportError, match=r"simai-profiling\[report\]"):
        write_report([_recorded_run(tmp_path / "run")], tmp_path / "r.html")
