"""Real spans from real processes: the run's trace collects every process and rank."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import runpy
import subprocess
import sys
import textwrap
import threading
import types
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry import trace

from simai.profiling import current_run, detect_rank, load_spans, start_run
from simai.profiling.tracing import ENV_DIR, ENV_TRACEPARENT

PY = sys.executable
MPIEXEC = Path(PY).parent / "mpiexec"

# The child only uses opentelemetry-api, as every simai library layer does: joining the
# run must not need any simai.profiling import in the child.
CHILD = textwrap.dedent(
    """
    import os
    from opentelemetry import trace

    tracer = trace.get_tracer("simai.datastore")
    with tracer.start_as_current_span("component.step", attributes={"simai.component": "child"}):
        with tracer.start_as_current_span(
            "datastore.stage_write",
            attributes={"simai.key": "x", "simai.bytes": 4096, "simai.backend": "filesystem"},
        ):
            pass
    """
)


def _child_script(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def test_spans_of_one_process_form_one_tree_under_the_root(tmp_path):
    tracer = trace.get_tracer("simai.components")
    with start_run(tmp_path / "run", copy_bandwidth=1234.5) as run:
        assert current_run() is run
        step = {"simai.component": "sim"}
        with (
            tracer.start_as_current_span("component.step", attributes=step),
            tracer.start_as_current_span("kernel.MatMulSimple2D"),
        ):
            pass
        # Pool threads start with an empty context: their spans must still join the run.
        with ThreadPoolExecutor(2, thread_name_prefix="pool") as pool:
            pool.submit(lambda: tracer.start_span("ai.train").end()).result()

    spans = {s.name: s for s in load_spans(tmp_path / "run")}
    assert set(spans) == {"run", "component.step", "kernel.MatMulSimple2D", "ai.train"}
    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    assert spans["run"].parent_id is None and spans["run"].span_id == run.root_span_id
    assert spans["run"].attributes["simai.copy_bandwidth_mbps"] == 1234.5
    assert spans["component.step"].parent_id == run.root_span_id
    assert spans["kernel.MatMulSimple2D"].parent_id == spans["component.step"].span_id
    assert spans["ai.train"].parent_id == run.root_span_id
    assert spans["ai.train"].thread_name.startswith("pool")
    assert spans["component.step"].thread_name == threading.main_thread().name
    assert all(s.pid == os.getpid() and s.host and s.end_ns >= s.start_ns for s in spans.values())
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["trace_id"] == run.trace_id and meta["end_ns"] >= meta["start_ns"]
    assert current_run() is None


def test_a_burst_of_spans_from_many_threads_loses_none(tmp_path):
    tracer = trace.get_tracer("simai.kernels")

    def burst(i):
        for j in range(2500):
            tracer.start_span("kernel.burst", attributes={"simai.step": j, "worker": i}).end()

    with start_run(tmp_path, copy_bandwidth=False), ThreadPoolExecutor(4) as pool:
        list(pool.map(burst, range(4)))
    spans = [s for s in load_spans(tmp_path) if s.name == "kernel.burst"]
    assert len(spans) == 10_000
    assert len({s.span_id for s in spans}) == 10_000


def test_import_loads_neither_the_sdk_nor_numpy():
    code = (
        "import sys, simai.profiling; "
        "print(sorted(m for m in ('numpy', 'opentelemetry.sdk', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_run_end_restores_environment_and_stops_recording(tmp_path):
    tracer = trace.get_tracer("test")
    with start_run(tmp_path / "a", copy_bandwidth=False) as first:
        assert os.environ[ENV_DIR] == str((tmp_path / "a").resolve())
        assert os.environ["OTEL_PYTHON_TRACER_PROVIDER"] == "simai"
        assert os.environ[ENV_TRACEPARENT] == first.traceparent
    assert ENV_DIR not in os.environ and ENV_TRACEPARENT not in os.environ
    assert "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ

    span = tracer.start_span("after the run")
    assert not span.is_recording()
    span.end()

    with start_run(tmp_path / "b", copy_bandwidth=False) as second:
        tracer.start_span("in the second run").end()
    assert second.trace_id != first.trace_id
    assert [s.name for s in load_spans(tmp_path / "a")] == ["run"]
    assert {s.name for s in load_spans(tmp_path / "b")} == {"run", "in the second run"}


def test_failed_run_marks_its_root_span_as_error(tmp_path):
    with pytest.raises(RuntimeError), start_run(tmp_path, copy_bandwidth=False):
        raise RuntimeError("component sim failed")
    (root,) = load_spans(tmp_path)
    assert root.status == "ERROR" and "component sim failed" in root.status_description


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_join_the_parent_trace(tmp_path, method):
    script = _child_script(tmp_path)
    with start_run(tmp_path / "run", copy_bandwidth=False) as run:
        ctx = mp.get_context(method)
        procs = [ctx.Process(target=runpy.run_path, args=(str(script),)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]

    spans = load_spans(tmp_path / "run")
    child_spans = [s for s in spans if s.pid != os.getpid()]
    assert {s.pid for s in child_spans} == {p.pid for p in procs}
    _assert_child_spans(spans, child_spans, run, nchildren=2)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_forkserver_children_join_the_parent_trace(tmp_path):
    # A forkserver keeps the environment it started with, and one started by an earlier
    # test in this process would not see the run: run the scenario in a fresh interpreter,
    # as a user's program starting its run before its first forkserver child would.
    script = _child_script(tmp_path)
    code = textwrap.dedent(f"""
        import json, multiprocessing as mp, runpy
        from simai.profiling import start_run
        if __name__ == "__main__":
            with start_run({str(tmp_path / "run")!r}, copy_bandwidth=False) as run:
                ctx = mp.get_context("forkserver")
                procs = [ctx.Process(target=runpy.run_path, args=({str(script)!r},)) for _ in range(2)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join(60)
            print(json.dumps({{"trace_id": run.trace_id, "root_span_id": run.root_span_id,
                              "pids": [p.pid for p in procs], "codes": [p.exitcode for p in procs]}}))
    """)
    main = tmp_path / "main.py"
    main.write_text(code)
    done = subprocess.run([PY, str(main)], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["codes"] == [0, 0]
    spans = load_spans(tmp_path / "run")
    child_spans = [s for s in spans if s.pid in out["pids"]]
    assert {s.pid for s in child_spans} == set(out["pids"])
    run = types.SimpleNamespace(
        trace_id=out["trace_id"],
        root_span_id=out["root_span_id"],
        spans_dir=tmp_path / "run" / "spans",
    )
    _assert_child_spans(spans, child_spans, run, nchildren=2)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_workers_join_the_parent_trace(tmp_path, method):
    # Pool workers outlive each task and leave through multiprocessing's exit path.
    with start_run(tmp_path / "run", copy_bandwidth=False) as run:
        pool = ProcessPoolExecutor(2, mp_context=mp.get_context(method))
        with pool:
            for future in [pool.submit(exec, CHILD, {}) for _ in range(2)]:
                future.result(timeout=60)
    spans = load_spans(tmp_path / "run")
    child_spans = [s for s in spans if s.pid != os.getpid()]
    _assert_child_spans(spans, child_spans, run, nchildren=2)


def _assert_child_spans(spans, child_spans, run, nchildren):
    assert {s.trace_id for s in spans} == {run.trace_id}
    steps = [s for s in child_spans if s.name == "component.step"]
    writes = [s for s in child_spans if s.name == "datastore.stage_write"]
    assert len(steps) == len(writes) == nchildren
    assert all(s.parent_id == run.root_span_id for s in steps)
    assert {w.parent_id for w in writes} == {s.span_id for s in steps}
    assert all(w.attributes["simai.bytes"] == 4096 for w in writes)
    files = {p.name for p in run.spans_dir.iterdir()}
    assert {f"{s.host}-{s.pid}.jsonl" for s in child_spans} <= files


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_mpi_ranks_join_the_parent_trace(tmp_path):
    script = _child_script(tmp_path)
    with start_run(tmp_path / "run", copy_bandwidth=False) as run:
        done = subprocess.run(
            [str(MPIEXEC), "-n", "2", PY, str(script)], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr

    spans = load_spans(tmp_path / "run")
    ranked = [s for s in spans if s.rank is not None]
    assert sorted(s.rank for s in ranked if s.name == "component.step") == [0, 1]
    assert {s.trace_id for s in spans} == {run.trace_id}
    assert all(s.parent_id == run.root_span_id for s in ranked if s.name == "component.step")
    assert len({s.pid for s in ranked}) == 2


def test_configure_from_env_is_a_no_op_without_a_run(tmp_path):
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from simai.profiling import configure_from_env
        assert configure_from_env() is None
        assert configure_from_env() is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        print("ok")
        """
    )
    assert _run_python(code).strip() == "ok"
    assert not list(tmp_path.iterdir())


def test_configure_from_env_joins_the_named_run_once(tmp_path):
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from simai.profiling import configure_from_env
        first = configure_from_env()
        assert first is not None and configure_from_env() is first
        trace.get_tracer("x").start_span("rank work").end()
        """
    )
    with start_run(tmp_path, copy_bandwidth=False) as run:
        env = dict(os.environ, PMI_RANK="3")
        done = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    (work,) = [s for s in load_spans(tmp_path) if s.name == "rank work"]
    assert work.rank == 3 and work.trace_id == run.trace_id
    assert work.parent_id == run.root_span_id


def _run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIMAI_", "OTEL_"))}
    done = subprocess.run(
        [PY, "-c", textwrap.dedent(code)],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_application_sdk_provider_is_joined_not_replaced(tmp_path):
    # The application set up OpenTelemetry first; the run records alongside its exporter.
    _run_python(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from simai.profiling import load_spans, start_run

        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        with start_run({str(tmp_path)!r}, copy_bandwidth=False) as run:
            trace.get_tracer("app").start_span("app.work").end()
        assert trace.get_tracer_provider() is provider
        work = [s for s in load_spans({str(tmp_path)!r}) if s.name == "app.work"]
        assert len(work) == 1 and work[0].trace_id == run.trace_id
        assert work[0].parent_id == run.root_span_id
        assert {{s.name for s in mine.get_finished_spans()}} == {{"run", "app.work"}}
        """
    )


def test_a_processor_added_to_our_provider_gets_spans_between_runs(tmp_path):
    _run_python(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from simai.profiling import start_run

        with start_run({str(tmp_path)!r}, copy_bandwidth=False):
            pass
        tracer = trace.get_tracer("lib")
        tracer.start_span("unseen").end()
        mine = InMemorySpanExporter()
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(mine))
        tracer.start_span("seen").end()
        assert [s.name for s in mine.get_finished_spans()] == ["seen"]
        """
    )


def test_detect_rank_reads_the_launchers_variables(monkeypatch):
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "RANK"):
        monkeypatch.delenv(var, raising=False)
    assert detect_rank() is None
    monkeypatch.setenv("RANK", "5")
    assert detect_rank() == 5
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    assert detect_rank() == 2
    monkeypatch.setenv("PMI_RANK", "not a number")
    assert detect_rank() == 2


def test_otlp_without_its_extra_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ImportError, match=r"simai-profiling\[otlp\]"):
        start_run(tmp_path, copy_bandwidth=False, otlp_endpoint="http://127.0.0.1:4318/v1/traces")
    assert current_run() is None
    assert ENV_DIR not in os.environ


def test_unknown_name_suggests_a_close_one():
    import simai.profiling

    with pytest.raises(AttributeError, match="start_run"):
        simai.profiling.start_runn  # noqa: B018


def test_otel_reset_still_uninstalls_a_provider(reset_otel):
    """conftest.reset_tracer_provider writes private names of opentelemetry-api (no public
    way to uninstall a provider exists). An upgrade that stops reading them would leak one
    test's provider into the next; it fails here instead (update conftest.py)."""
    from opentelemetry.sdk.trace import TracerProvider

    first, second = TracerProvider(), TracerProvider()
    trace.set_tracer_provider(first)
    assert trace.get_tracer_provider() is first
    reset_otel()
    assert trace.get_tracer_provider() is not first
    trace.set_tracer_provider(second)  # refused (with a warning) when the reset did nothing
    assert trace.get_tracer_provider() is second


def test_copy_bandwidth_is_measured_and_validated():
    from simai.profiling import measure_copy_bandwidth

    assert measure_copy_bandwidth(nbytes=8 * 2**20, repeats=2) > 0
    with pytest.raises(ValueError, match="repeats"):
        measure_copy_bandwidth(repeats=0)
