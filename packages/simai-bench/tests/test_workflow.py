"""The Workflow facade on a real thread pool and process pool."""

from __future__ import annotations

import concurrent.futures as cf
import json
import sys
import textwrap
import threading
import time

import pytest

from simai.bench import OrchestratorConfig, SystemConfig, Workflow, WorkflowComponent, WorkflowError


def _wf(**kw) -> Workflow:
    return Workflow(
        orchestrator_config=OrchestratorConfig(name="thread-pool"),
        system_config=SystemConfig(name="local", ncpus=4, ngpus=0),
        **kw,
    )


def test_decorator_dependencies_and_per_component_result():
    w = _wf()
    order = []

    @w.component(name="a", args={"x": 2})
    def a(x):
        order.append("a")
        time.sleep(0.05)
        return {"y": x * 2}

    @w.component(name="b", dependencies=["a"])
    def b():
        order.append("b")
        return "done"

    assert b.__name__ == "b"  # the decorator returns the function unchanged
    result = w.launch(timeout=60)
    assert result.ok and not result.failed
    assert order == ["a", "b"]
    assert result["a"].value == {"y": 4} and result["b"].value == "done"
    ra, rb = result["a"], result["b"]
    assert ra.status == rb.status == "succeeded"
    assert ra.start <= ra.end <= rb.start <= rb.end
    assert ra.duration >= 0.05
    assert result.start <= ra.start and rb.end <= result.end


def test_failure_is_named_and_dependents_fail_with_its_name():
    w = _wf()
    w.register_component("ok", lambda: 1)
    w.register_component("bad", _raise, args={"msg": "boom"})
    w.register_component("after", lambda: 2, dependencies=["bad"])
    result = w.launch(timeout=60)
    assert not result.ok and not bool(result)
    assert {c.name for c in result.failed} == {"bad", "after"}
    assert "boom" in result["bad"].error and "RuntimeError" in result["bad"].error
    assert "bad" in result["after"].error
    assert result["ok"].ok
    with pytest.raises(WorkflowError, match="bad"):
        result.raise_for_status()
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["ok"] is False and [c["status"] for c in doc["components"]] == [
        "succeeded",
        "failed",
        "failed",
    ]


def _raise(msg):
    raise RuntimeError(msg)


def test_launch_async_returns_a_future_that_resolves_to_the_result():
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(60)  # held until the test has looked at the live status
        return "done"

    w = _wf()
    w.register_component("slow", slow)
    fut = w.launch_async(timeout=120)
    assert isinstance(fut, cf.Future)
    try:
        assert started.wait(60)
        assert not fut.done()
        assert [c.status for c in w.status()] == ["running"]
    finally:
        release.set()
    result = fut.result(timeout=60)
    assert result.ok and result["slow"].value == "done"


def _sleep(s):
    time.sleep(s)
    return s


def test_timeout_fails_unfinished_components_instead_of_hanging():
    release, finished = threading.Event(), threading.Event()

    def forever():
        release.wait(60)  # bounded, so a failing test cannot hang the suite
        finished.set()

    w = _wf()
    w.register_component("forever", forever)
    try:
        result = w.launch(timeout=0.3)
        # launch() returned while the component was still running: it did not wait for it.
        assert not finished.is_set()
        assert not result.ok
        assert result["forever"].status == "interrupted"
        assert "timeout" in result["forever"].error
    finally:
        release.set()


def test_client_parameter_is_injected_and_dynamic_tasks_are_in_the_result():
    w = _wf()

    def parent(client, n=3):
        futs = [
            client.submit(WorkflowComponent(f"child{i}", _sleep, args={"s": 0.01}))
            for i in range(n)
        ]
        return sum(f.result(timeout=30) is not None for f in futs)

    w.register_component("parent", parent)
    result = w.launch(timeout=60)
    assert result.ok, result.failed
    assert result["parent"].value == 3
    assert {"child0", "child1", "child2"} <= set(result.components)


def test_registering_a_name_twice_is_an_error():
    w = _wf()
    w.register_component("a", lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        w.register_component("a", lambda: 2)


def test_unknown_dependency_fails_clearly_not_hangs():
    w = _wf()
    w.register_component("a", lambda: 1, dependencies=["nope"])
    result = w.launch(timeout=30)
    assert not result.ok
    text = (result.error or "") + " ".join(c.error or "" for c in result)
    assert "nope" in text


def test_from_yaml_runs_functions_from_a_file_and_commands(tmp_path):
    (tmp_path / "tasks.py").write_text(
        textwrap.dedent("""
        def produce(n):
            return list(range(n))
    """)
    )
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent(f"""
        name: files
        orchestrator: {{name: thread-pool}}
        components:
          - name: produce
            function: tasks.py:produce
            args: {{n: 3}}
          - name: echo
            command: [{sys.executable}, -c, "print('hi')"]
            dependencies: [produce]
    """)
    )
    w = Workflow.from_yaml(tmp_path / "wf.yaml")
    result = w.launch(timeout=60)
    assert result.ok, [c.error for c in result.failed]
    assert result["produce"].value == [0, 1, 2]
    assert result["echo"].value.strip() == "hi"


@pytest.mark.slow
def test_process_pool_runs_file_functions_by_value(tmp_path):
    (tmp_path / "tasks.py").write_text("import os\ndef pid():\n    return os.getpid()\n")
    (tmp_path / "wf.yaml").write_text(
        "orchestrator: {name: process-pool, max_workers: 1}\n"
        "components:\n  - {name: p, function: tasks.py:pid}\n"
    )
    import os

    result = Workflow.from_yaml(tmp_path / "wf.yaml").launch(timeout=120)
    assert result.ok, [c.error for c in result.failed]
    assert result["p"].value != os.getpid()


def test_profiled_launch_writes_a_trace_rooted_at_workflow(tmp_path):
    w = _wf(name="traced")
    w.register_component("a", _sleep, args={"s": 0.05})
    w.register_component("b", _sleep, args={"s": 0.01}, dependencies=["a"])
    result = w.launch(timeout=60, run_dir=tmp_path / "run")
    assert result.ok
    assert {"trace", "summary_json", "summary_csv"} <= set(result.files)
    from simai.profiling import load_spans

    spans = load_spans(tmp_path / "run")
    roots = [s for s in spans if s.parent_id is None]
    assert [r.name for r in roots] == ["workflow"]
    assert roots[0].attributes["simai.workflow"] == "traced"
    comp = {
        s.attributes.get("simai.component") for s in spans if s.name == "orchestrator.component"
    }
    assert comp == {"a", "b"}
    assert all(s.trace_id == roots[0].trace_id for s in spans)


def test_declarative_simulation_and_ai_components_run_and_stage(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent("""
        name: declarative
        server: {type: filesystem, options: {server_address: STAGE}}
        components:
          - name: emulated
            simulation:
              kernels: [{name: MatMulSimple2D, run_time: 0.02, data_size: [64, 64]}]
              nsteps: 6
              write_every: 3
              array_size: 1000
          - name: infer
            ai: {model_type: feedforward, mode: infer, run_count: 2, nsteps: 2}
            dependencies: [emulated]
    """).replace("STAGE", str(tmp_path / "stage"))
    )
    result = Workflow.from_yaml(tmp_path / "wf.yaml").launch(timeout=120)
    assert result.ok, [c.error for c in result.failed]
    sim = result["emulated"].value
    assert sim["steps"] == 6 and sim["arrays_written"] == 2
    assert sim["mean_step_s"] >= 0.018  # each step was paced to its 20 ms target
    assert result["infer"].value["steps"] == 2


def test_a_dependency_cycle_is_a_run_error_and_nothing_starts():
    w = _wf()
    ran = []
    w.register_component("a", lambda: ran.append("a"), dependencies=["b"])
    w.register_component("b", lambda: ran.append("b"), dependencies=["a"])
    result = w.launch(timeout=30)
    assert not result.ok and "cycle" in result.error
    assert ran == [] and {c.status for c in result} == {"failed"}


def test_an_unknown_executor_is_named_with_close_matches():
    with pytest.raises(ValueError, match="'thread-pool'"):
        Workflow(OrchestratorConfig(name="thread-pol"), SystemConfig(name="local", ncpus=2))
