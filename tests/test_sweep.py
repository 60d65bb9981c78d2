"""`simai sweep` / `run_sweep` over real runs of a small workflow (real filesystem and
node-local staging, real thread pool, each cell a real `simai run` process), and the
report.html that `simai run` writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bokeh", reason="the report needs bokeh: pip install 'simai-profiling[report]'")

from simai.bench.config import WorkflowFileError
from simai.bench.sweep import SWEEP_SCHEMA_VERSION, parse_axis, plan_sweep, run_sweep
from simai.profiling.report import REPORT_SCHEMA_VERSION


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


def _section(doc: str, section: str) -> str:
    start = doc.index(f'<section id="{section}"')
    return doc[start : doc.index("</section>", start)]


TINY_COMPONENTS = """
import time

import numpy as np
from simai.datastore import DataStore


def writer(server_info, n=3, size=1000, fail=False, sleep=0.0):
    if fail:
        raise ValueError("asked to fail")
    time.sleep(sleep)
    ds = DataStore("writer", server_info=server_info)
    for i in range(n):
        ds.stage_write(f"x{i}", np.full(size, i, dtype=np.float32))
    return {"written": n}


def reader(server_info, n=3):
    ds = DataStore("reader", server_info=server_info)
    return {"total": sum(float(ds.stage_read(f"x{i}", timeout=30).sum()) for i in range(n))}
"""

TINY_FLOW = """
version: 1
name: tiny
server: {type: filesystem}
orchestrator: {name: thread-pool}
components:
  - {name: writer, function: "comps.py:writer", args: {n: 3, size: 1000}}
  - {name: reader, function: "comps.py:reader", args: {n: 3}, dependencies: [writer]}
"""


def tiny_flow(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comps.py").write_text(TINY_COMPONENTS)
    flow = folder / "flow.yaml"
    flow.write_text(TINY_FLOW)
    return flow


def test_simai_run_writes_report_and_fingerprint(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    proc = _simai("run", str(flow), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "run"
    assert (run / "trace.json").is_file() and (run / "report.html").is_file()
    assert "report.html" in proc.stdout
    fp = json.loads((run / "fingerprint.json").read_text())
    assert fp["schema_version"] == REPORT_SCHEMA_VERSION
    assert fp["config"]["name"] == "tiny" and "simai-profiling" in fp["versions"]
    doc = (run / "report.html").read_text()
    assert "<td>writer</td><td>succeeded</td>" in _section(doc, "components")
    assert "datastore.stage_write" in _section(doc, "staging")


def test_parse_axis_forms():
    assert parse_axis("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_axis("a.b=1,2") == ("a.b", [1, 2])
    assert parse_axis("a.b=x") == ("a.b", ["x"])
    with pytest.raises(ValueError, match="expected PATH"):
        parse_axis("nothing")


def test_plan_is_the_cartesian_product_with_stable_names(tmp_path):
    cells = plan_sweep(
        tmp_path,
        backends=["filesystem", "redis"],
        executors=["thread-pool"],
        vary={"components.0.args.size": [10, 20]},
        repeat=2,
    )
    assert len(cells) == 2 * 1 * 2 * 2
    names = [c.run_dir.name for c in cells]
    assert len(set(names)) == len(names)
    assert names[0] == "filesystem__thread-pool__size-10__r0"
    assert names == [
        c.run_dir.name
        for c in plan_sweep(
            tmp_path,
            backends=["filesystem", "redis"],
            executors=["thread-pool"],
            vary={"components.0.args.size": [10, 20]},
            repeat=2,
        )
    ]


def test_a_misspelled_field_fails_before_anything_runs(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    with pytest.raises(WorkflowFileError, match="componnets"):
        run_sweep(flow, vary={"componnets.0.args.size": [1, 2]}, out=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_sweep_runs_every_cell_records_failures_and_resumes(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    out = tmp_path / "sweep"
    axes = {"vary": {"components.0.args.fail": [True, False]}}
    seen = []
    result = run_sweep(flow, out=out, on_cell=lambda c, n: seen.append((c.index, c.status)), **axes)
    failed, ok = result.cells
    # The failing cell is recorded with its root cause, and the sweep went on past it.
    assert failed.status == "failed" and "asked to fail" in failed.error
    assert ok.status == "succeeded"
    assert not result.ok and result.failed == [failed]
    assert seen == [(0, "running"), (0, "failed"), (1, "running"), (1, "succeeded")]

    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 2 and {r["schema_version"] for r in rows} == {str(SWEEP_SCHEMA_VERSION)}
    ok_row = rows[1]
    assert ok_row["status"] == "succeeded" and ok_row["backend"] == "filesystem"
    assert float(ok_row["wall_s"]) > 0 and float(ok_row["stage_write MB/s"]) > 0
    assert json.loads((out / "sweep.json").read_text())["schema_version"] == SWEEP_SCHEMA_VERSION
    doc = (out / "report.html").read_text()
    assert "Comparison of 2 runs" in doc and "★ best" in doc
    assert all((c.run_dir / "report.html").is_file() for c in result.cells)

    # Run again: the succeeded cell is skipped, the failed one runs again.
    mtime = (ok.run_dir / "result.json").stat().st_mtime_ns
    again = run_sweep(flow, out=out, **axes)
    assert [c.status for c in again.cells] == ["failed", "skipped"]
    assert (ok.run_dir / "result.json").stat().st_mtime_ns == mtime


SWEEP_SECTION = """
sweep:
  backend: [filesystem, node_local]
  vary: {components.0.args.size: [500]}
"""


def test_simai_sweep_command_takes_its_axes_from_the_sweep_section(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    flow.write_text(TINY_FLOW + SWEEP_SECTION)
    proc = _simai(
        "sweep", str(flow), "--executor", "thread-pool", "--out", str(tmp_path / "s"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label = "backend=node-local executor=thread-pool components.0.args.size=500 repeat=0"
    assert f"[2/2] {label}: succeeded" in proc.stdout
    assert "sweep: 2/2 cells succeeded" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "s" / "sweep.csv").open()))
    assert [(r["backend"], r["components.0.args.size"]) for r in rows] == [
        ("filesystem", "500"),
        ("node-local", "500"),
    ]
    result = json.loads(
        (tmp_path / "s" / "node-local__thread-pool__size-500" / "result.json").read_text()
    )
    assert result["schema_version"] == 1 and result["components"][1]["value"] == {"total": 1500.0}
    # `simai report` on a sweep directory compares its cells.
    proc = _simai("report", str(tmp_path / "s"), "-o", str(tmp_path / "s.html"), cwd=tmp_path)
    assert proc.returncode == 0 and "Comparison of 2 runs" in (tmp_path / "s.html").read_text()
    proc = _simai("sweep", str(flow), "--executor", "no-such-pool", cwd=tmp_path)
    assert proc.returncode == 2 and "no-such-pool" in proc.stderr
    proc = _simai("sweep", str(flow), "--vary", "componnets.0.args.n=[1]", cwd=tmp_path)
    assert proc.returncode == 2 and "componnets" in proc.stderr


def test_command_line_axes_replace_the_files_axes(tmp_path):
    # Job scripts (--nodes) show each cell's command without running it.
    flow = tiny_flow(tmp_path / "flow")
    flow.write_text(TINY_FLOW + SWEEP_SECTION + "  repeat: 2\n  nodes: [2]\n")
    out = tmp_path / "s"
    proc = _simai(
        "sweep",
        str(flow),
        "--backend",
        "node-local",
        "--vary",
        "components.1.args.n=[1]",
        "--repeat",
        "1",
        "--scheduler",
        "slurm",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (script,) = out.glob("*/job.sh")
    # --backend and --repeat replaced the file's; --vary added a path to the file's one.
    assert script.parent.name == "node-local__nodes-2__size-500__n-1"
    text = script.read_text()
    assert "--backend node-local" in text and "#SBATCH --nodes=2" in text
    assert "components.0.args.size=500" in text and "components.1.args.n=1" in text
    assert json.loads((out / "sweep.json").read_text())["vary"] == {
        "components.0.args.size": [500],
        "components.1.args.n": [1],
    }


def test_a_bad_sweep_section_names_the_field(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    flow.write_text(TINY_FLOW + "sweep: {backend: [redsi], repeat: 0}\n")
    proc = _simai("sweep", str(flow), "--out", str(tmp_path / "s"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "sweep.backend" in proc.stderr and "'redis'" in proc.stderr
    assert "sweep.repeat" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_nodes_axis_writes_job_scripts_and_a_rerun_collects_the_finished_jobs(tmp_path):
    flow = tiny_flow(tmp_path / "flow")
    out = tmp_path / "s"
    proc = _simai(
        "sweep",
        str(flow),
        "--nodes",
        "2,4",
        "--scheduler",
        "slurm",
        "--job-option=--account=proj",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scripts = sorted(out.glob("*/job.sh"))
    assert [p.parent.name for p in scripts] == ["nodes-2", "nodes-4"]
    text = scripts[0].read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --account=proj" in text
    assert scripts[0].stat().st_mode & 0o777 == 0o700
    assert subprocess.run(["bash", "-n", str(scripts[0])]).returncode == 0
    cells = json.loads((out / "sweep.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["job script", "job script"]

    # The "job" of the first cell runs (here without a scheduler: the directives are
    # comments to bash); running the sweep again collects it and rewrites the other script.
    job = subprocess.run(
        ["bash", str(scripts[0])], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert job.returncode == 0, job.stdout + job.stderr
    again = run_sweep(flow, nodes=[2, 4], scheduler="slurm", out=out)
    assert [c.status for c in again.cells] == ["skipped", "job script"]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert rows[0]["nodes"] == "2" and float(rows[0]["wall_s"]) > 0
    assert "report" in again.files


# --------------------------------------------------------------------------- live progress


def _append(path: Path, records: list[dict], partial: str = "") -> None:
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records) + partial)


def test_live_progress_counts_steps_from_the_span_stream(tmp_path):
    from simai.bench import Workflow
    from simai.bench._display import LiveProgress, plain_line

    w = Workflow(name="p")
    w.register_component("sim", lambda: None, args={"nsteps": 4})
    w.register_component("train", lambda: None, dependencies=["sim"])
    spans = tmp_path / "run" / "spans"
    spans.mkdir(parents=True)
    progress = LiveProgress(w, tmp_path / "run")
    step = {
        "name": "component.step",
        "start_ns": 1,
        "end_ns": 2,
        "pid": 7,
        "thread_id": 1,
        "attributes": {"simai.component": "sim", "simai.step": 0},
    }
    write = {
        "name": "datastore.stage_write",
        "start_ns": 2,
        "end_ns": 3,
        "pid": 7,
        "thread_id": 1,
        "attributes": {"simai.bytes": 1000},
    }
    # Two whole records and half of a third, as a reader can meet a file being written.
    _append(spans / "vm-7.jsonl", [step, write], partial=json.dumps(step)[:20])
    progress.update()
    rows = {r["component"]: r for r in progress.rows()}
    assert rows["sim"]["done"] == 1 and rows["sim"]["total"] == 4
    assert rows["train"]["waits"] == "waits for sim"
    _append(spans / "vm-7.jsonl", [], partial=json.dumps(step)[20:] + "\n")
    progress.update()
    assert {r["component"]: r for r in progress.rows()}["sim"]["done"] == 2
    line = plain_line(3.0, progress.rows())
    assert "\n" not in line and "sim: pending, 2/4 steps" in line and "train: pending" in line


def test_span_tail_does_not_follow_a_planted_link(tmp_path):
    from simai.bench._display import SpanTail

    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"name": "x", "start_ns": 0, "end_ns": 1}) + "\n")
    (tmp_path / "run" / "spans").mkdir(parents=True)
    (tmp_path / "run" / "spans" / "evil.jsonl").symlink_to(secret)
    assert SpanTail(tmp_path / "run").poll() == []


@pytest.mark.reliability
def test_sigterm_ends_the_running_cell_and_records_it(tmp_path):
    import signal
    import time

    flow = tiny_flow(tmp_path / "flow")
    out = tmp_path / "s"
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simai.bench.cli",
            "sweep",
            str(flow),
            "--out",
            str(out),
            "--vary",
            "components.0.args.sleep=[60]",
            "--grace-period",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        log = out / "sleep-60" / "simai-run.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "simai run" not in (
            log.read_text() if log.exists() else ""
        ):
            time.sleep(0.2)
        assert log.exists(), "the cell never started"
        sweep.send_signal(signal.SIGTERM)
        output, _ = sweep.communicate(timeout=120)
        assert sweep.returncode == 128 + signal.SIGTERM, output
    finally:
        if sweep.poll() is None:  # the test failed early: leave nothing behind
            sweep.kill()
            sweep.wait()
    cell = json.loads((out / "sweep.json").read_text())["cells"][0]
    assert cell["status"] == "interrupted"
    # Nothing of the cell outlives the sweep: no process still runs with its directory.
    assert not [pid for pid, cmd in _cmdlines() if str(out) in cmd]


def _cmdlines():
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                yield int(p.name), (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                continue  # ended while we looked
