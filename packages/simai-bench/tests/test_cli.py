"""The `simai` command line, run as a user runs it: a subprocess, checked by exit code and files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_EXE = Path(sys.executable).with_name("simai")
SIMAI = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "simai.bench.cli"]
REPO = Path(__file__).resolve().parents[3]


def simai(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 240):
    full_env = {**os.environ, "COLUMNS": "200"}
    full_env.pop("SIMAI_BENCH_DIR", None)
    full_env.update(env or {})
    return subprocess.run(
        [*SIMAI, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )


def test_schema_is_the_json_schema_of_the_workflow_format(tmp_path):
    out = simai("schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["title"] == "simai workflow" and "ComponentSpec" in schema["$defs"]
    assert simai("schema", "--out", str(tmp_path / "s.json")).returncode == 0
    assert json.loads((tmp_path / "s.json").read_text()) == schema


def test_listings_come_from_the_layers():
    kernels = json.loads(simai("kernels", "--json").stdout)
    assert "MatMulSimple2D" in kernels["compute"] and "AllReduce" in kernels["comm"]
    servers = json.loads(simai("servers", "--json").stdout)
    assert {"filesystem", "node-local", "redis", "dragon", "daos"} <= set(servers)
    assert "password" in {f["name"] for f in servers["redis"]}
    executors = json.loads(simai("executors", "--json").stdout)
    assert {"thread-pool", "process-pool", "dask", "ray", "parsl-local"} <= set(executors)
    table = simai("servers")
    assert table.returncode == 0 and "redis" in table.stdout


def _write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


TASKS = """
    import time

    def ok(n=3):
        time.sleep(0.05)
        return {"items": n, "MB_per_s": 1.5}

    def broken():
        raise ValueError("the input deck is missing")
"""


def test_run_succeeds_and_writes_trace_summary_timeline_and_result(tmp_path):
    _write(tmp_path, TASKS, "tasks.py")
    wf = _write(
        tmp_path,
        f"""
        name: good
        orchestrator: {{name: thread-pool}}
        components:
          - {{name: first, function: tasks.py:ok, args: {{n: 4}}}}
          - name: second
            command: [{sys.executable}, -c, "print(42)"]
            dependencies: [first]
    """,
    )
    out = simai("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stdout + out.stderr
    run = tmp_path / "run"
    for name in ("result.json", "trace.json", "summary.json", "summary.csv", "timeline.png"):
        assert (run / name).is_file(), name
    result = json.loads((run / "result.json").read_text())
    assert result["ok"] is True
    assert {c["name"]: c["status"] for c in result["components"]} == {
        "first": "succeeded",
        "second": "succeeded",
    }
    assert result["components"][0]["value"] == {"items": 4, "MB_per_s": 1.5}
    assert "succeeded" in out.stdout and "MB_per_s" in out.stdout  # summary + metrics tables
    trace = json.loads((run / "trace.json").read_text())
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"workflow", "orchestrator.component"} <= names


def test_a_failing_component_is_named_and_the_exit_code_is_not_zero(tmp_path):
    _write(tmp_path, TASKS, "tasks.py")
    wf = _write(
        tmp_path,
        """
        name: bad
        components:
          - {name: prepare, function: tasks.py:ok}
          - {name: solver, function: tasks.py:broken, dependencies: [prepare]}
          - {name: analysis, function: tasks.py:ok, dependencies: [solver]}
    """,
    )
    out = simai("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    assert "solver" in out.stdout and "the input deck is missing" in out.stdout
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    status = {c["name"]: c["status"] for c in result["components"]}
    assert status == {"prepare": "succeeded", "solver": "failed", "analysis": "failed"}
    analysis = next(c for c in result["components"] if c["name"] == "analysis")
    assert "solver" in analysis["error"]


def test_a_failing_command_component_fails_the_run(tmp_path):
    wf = _write(
        tmp_path,
        f"""
        components:
          - name: exits
            command: [{sys.executable}, -c, "import sys; sys.exit(3)"]
    """,
    )
    out = simai("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    assert "exits" in out.stdout and "code 3" in out.stdout


@pytest.mark.parametrize(
    ("yaml_text", "args", "expected"),
    [
        (
            "components: [{name: a, command: 'true'}]\norchestrator: {name: thred-pool}\n",
            [],
            ["orchestrator.name", "'thread-pool'"],
        ),
        (
            "components: [{name: a, command: 'true'}]\n",
            ["--executor", "proces-pool"],
            ["'process-pool'"],
        ),
        (
            "components: [{name: a, command: 'true'}]\n",
            ["--backend", "rediss"],
            ["server.type", "'redis'"],
        ),
        (
            "components: [{name: a, simulation: {kernels: [{name: MatMulSimpel2D}]}}]\n",
            [],
            ["components[0].simulation.kernels[0].name", "'MatMulSimple2D'"],
        ),
        (
            "components: [{name: a, command: 'true', dependncies: [b]}]\n",
            [],
            ["components[0].dependncies"],
        ),
        (
            "components: [{name: a, command: 'true'}]\nserver: {type: redis, options: {pasword: x}}\n",
            [],
            ["server.options", "'password'"],
        ),
        ("components: [{name: a, function: 'tasks_missing.py:run'}]\n", [], ["no such file"]),
        ("components: [{name: a, function: 'json:dumpz'}]\n", [], ["'dumps'"]),
        ("components: [\n", [], ["not valid YAML"]),
        (
            "components: [{name: a, command: 'true'}]\n",
            ["--set", "components.0.nnodes=0"],
            ["components[0].nnodes"],
        ),
    ],
)
def test_bad_input_exits_2_with_the_field_and_close_matches(tmp_path, yaml_text, args, expected):
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml_text)
    out = simai("run", str(wf), *args, "--out", str(tmp_path / "run"))
    assert out.returncode == 2, out.stdout + out.stderr
    for text in expected:
        assert text in out.stderr, (text, out.stderr)
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_missing_file_and_wrong_suffix_exit_2(tmp_path):
    assert simai("run", str(tmp_path / "nope.yaml")).returncode == 2
    (tmp_path / "wf.toml").write_text("")
    out = simai("run", str(tmp_path / "wf.toml"))
    assert out.returncode == 2 and ".yaml" in out.stderr


def test_set_overrides_reach_the_component(tmp_path):
    _write(tmp_path, TASKS, "tasks.py")
    wf = _write(tmp_path, "components: [{name: a, function: tasks.py:ok, args: {n: 1}}]\n")
    out = simai("run", str(wf), "--set", "components.0.args.n=7", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["components"][0]["value"]["items"] == 7


def test_run_a_python_script_that_composes_a_workflow(tmp_path):
    script = _write(
        tmp_path,
        """
        from simai.bench import Workflow, OrchestratorConfig, SystemConfig

        w = Workflow(OrchestratorConfig(name="thread-pool"), SystemConfig(name="local", ncpus=2), name="scripted")

        @w.component(name="hello")
        def hello():
            return "hi"

        @w.component(name="fails", dependencies=["hello"])
        def fails():
            raise RuntimeError("no convergence")
    """,
        "flow.py",
    )
    out = simai("run", str(script), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    assert "fails" in out.stdout and "no convergence" in out.stdout
    result = json.loads((tmp_path / "run" / "scripted" / "result.json").read_text())
    assert {c["name"]: c["status"] for c in result["components"]} == {
        "hello": "succeeded",
        "fails": "failed",
    }


def test_a_script_that_raises_fails_the_run(tmp_path):
    script = _write(tmp_path, "raise SystemExit('bad arguments')\n", "flow.py")
    out = simai("run", str(script), "--out", str(tmp_path / "run"))
    assert out.returncode == 1 and "bad arguments" in out.stderr


def test_trace_summarises_and_plots_a_run(tmp_path):
    _write(tmp_path, TASKS, "tasks.py")
    wf = _write(tmp_path, "components: [{name: a, function: tasks.py:ok}]\n")
    assert simai("run", str(wf), "--out", str(tmp_path / "run")).returncode == 0
    png = tmp_path / "again.png"
    out = simai(
        "trace",
        str(tmp_path / "run" / "trace.json"),
        "--plot",
        str(png),
        "--summary",
        str(tmp_path / "s.csv"),
    )
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "orchestrator.component" in out.stdout
    assert "operation" in (tmp_path / "s.csv").read_text().splitlines()[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = simai("trace", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_bench_without_a_bench_folder_says_where_to_find_it(tmp_path):
    out = simai("bench", "datastore", "--quick", cwd=tmp_path)
    assert out.returncode == 2
    assert "SIMAI_BENCH_DIR" in out.stderr and "Traceback" not in out.stderr


STUB_SUITE = """
    # A stand-in suite: emits the JSON shape of bench/_common.report with two methods.
    import sys
    from _common import Result, parser, report

    args = parser("stub").parse_args()
    results = []
    for kib in (1, 64, 1024):
        nbytes = kib * 1024
        results.append(Result("datastore", f"filesystem write+read {kib} KiB", ours=nbytes / 2e8,
                              reference=nbytes / 1e9, reference_name="np.copyto",
                              extra={"method": "filesystem", "size_bytes": nbytes, "quick": args.quick}))
    report("stub staging", results, args.json)
"""


def test_bench_runs_a_suite_passes_flags_and_plots_staging(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(REPO / "bench" / "_common.py", bench / "_common.py")
    _write(bench, STUB_SUITE, "datastore.py")
    out_json = tmp_path / "ds.json"
    out = simai("bench", "datastore", "--quick", "--json", str(out_json), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out_json.read_text())
    assert all(r["extra"]["quick"] for r in data["results"])
    png = out_json.with_suffix(".png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    # The suite can also be found through SIMAI_BENCH_DIR from anywhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = simai("bench", "kernels", cwd=elsewhere, env={"SIMAI_BENCH_DIR": str(bench)})
    assert out.returncode == 2 and "kernels.py does not exist" in out.stderr


def test_staging_plot_draws_one_line_per_method(tmp_path):
    from simai.bench._benchrun import staging_plot

    results = []
    for method in ("redis", "filesystem"):
        for size in (1024, 1 << 20, 64 << 20):
            results.append(
                {
                    "case": f"{method} {size} B",
                    "ours": size / 1e8,
                    "reference": size / 1e9,
                    "reference_name": "np.copyto",
                    "unit": "s",
                    "extra": {"method": method, "size_bytes": size},
                }
            )
    src = tmp_path / "r.json"
    src.write_text(json.dumps({"title": "t", "machine": {}, "results": results}))
    assert staging_plot(src, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    src.write_text(
        json.dumps({"title": "t", "results": [{"case": "no sizes", "ours": 1, "reference": 1}]})
    )
    assert not staging_plot(src, tmp_path / "q.png")


def test_script_overrides_apply_to_workflows_that_own_their_server(tmp_path):
    script = _write(
        tmp_path,
        """
        from simai.bench import Workflow, OrchestratorConfig, SystemConfig, server_registry, DataStore

        w = Workflow(OrchestratorConfig(name="thread-pool"), SystemConfig(name="local", ncpus=2),
                     name="owned", server_config=server_registry.create_config("filesystem"))

        @w.component(name="stage")
        def stage(server_info):
            ds = DataStore("s", server_info=server_info)
            ds.stage_write("k", [1, 2, 3])
            return {"backend": server_info["type"], "read_back": ds.stage_read("k")}

        if __name__ == "__main__":
            w.launch()
    """,
        "flow.py",
    )
    out = simai(
        "run",
        str(script),
        "--backend",
        "node-local",
        "--executor",
        "process-pool",
        "--out",
        str(tmp_path / "run"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "run" / "owned" / "result.json").read_text())
    assert result["components"][0]["value"] == {"backend": "node-local", "read_back": [1, 2, 3]}
    assert result["components"][0]["executor"] == "process-pool"
    out = simai("run", str(script), "--executor", "thread_pol", "--out", str(tmp_path / "run2"))
    assert out.returncode == 2 and "'thread-pool'" in out.stderr


def test_arguments_after_a_double_dash_reach_a_script(tmp_path):
    script = _write(
        tmp_path,
        """
        import sys
        from simai.bench import Workflow

        w = Workflow(name="argv")
        n = int(sys.argv[sys.argv.index("--n") + 1])
        w.register_component("echo", lambda: n)
        w.launch()
    """,
        "flow.py",
    )
    out = simai("run", str(script), "--out", str(tmp_path / "run"), "--", "--n", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        json.loads((tmp_path / "run" / "argv" / "result.json").read_text())["components"][0][
            "value"
        ]
        == 5
    )
    wf = _write(tmp_path, "components: [{name: a, command: 'true'}]\n")
    out = simai("run", str(wf), "--", "--n", "5")
    assert out.returncode == 2 and "only a .py workflow takes arguments" in out.stderr
