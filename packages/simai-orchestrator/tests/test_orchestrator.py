"""Orchestrator semantics that do not depend on the executor: API, validation, records,
resources and pinning, GPU visibility, registry, spans."""

from __future__ import annotations

import os
import sys
import threading
import time

import cloudpickle
import pytest
from pydantic import ValidationError

from simai.orchestrator import (
    ComponentRecord,
    OchestratorConfig,
    Orchestrator,
    OrchestratorClient,
    OrchestratorConfig,
    OrchetratorClient,
    SystemConfig,
    WorkflowComponent,
    current_task,
    list_executors,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a, b):
    return a + b


def seen():
    """What the component was given, as the component itself sees it."""
    ctx = current_task()
    return {
        "affinity": sorted(os.sched_getaffinity(0)),
        "ctx_cpus": list(ctx.cpus) if ctx.cpus else None,
        "ctx_gpus": list(ctx.gpus),
        "env": {
            k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "ZE_AFFINITY_MASK", "MY_FLAG")
        },
        "ctx_env": dict(ctx.env),
        "pid": os.getpid(),
    }


def hold(event_path, seconds=10.0):
    # Blocks until the test creates ``event_path`` (bounded), so overlap is controlled.
    deadline = time.monotonic() + seconds
    while not os.path.exists(event_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return time.time()


@pytest.fixture
def threads():
    with Orchestrator(
        SystemConfig(name="t", ncpus=2), OrchestratorConfig(name="thread-pool", max_workers=4)
    ) as o:
        yield o


# -- API shape -------------------------------------------------------------------------
def test_original_spellings_and_positional_component():
    assert OchestratorConfig is OrchestratorConfig
    assert OrchetratorClient is OrchestratorClient
    c = WorkflowComponent("sim0", add, type="local", args={"a": 1, "b": 2}, dependencies=[])
    assert (c.name, c.executable, c.type, c.args) == ("sim0", add, "local", {"a": 1, "b": 2})


def test_readme_dynamic_example_shape():
    orch = Orchestrator(
        SystemConfig(name="local", ncpus=12, ngpus=0),
        OchestratorConfig(name="thread-pool", profile=False),
    )
    client = orch.start()
    fut = client.submit(
        WorkflowComponent("sim", executable=add, type="local", args={"a": 2, "b": 3})
    )
    assert fut.result(timeout=30) == 5
    report = orch.wait(timeout=10)
    orch.stop()
    assert report.ok and report.records["sim"].status == "succeeded"


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"type": "remote-ish"}, "type"),
        ({"ppn": 0}, "ppn"),
        ({"timeout": -1}, "timeout"),
        ({"retries": -2}, "retries"),
        ({"nnodes": "many"}, "nnodes"),
    ],
)
def test_bad_component_fields_are_named(bad, field):
    with pytest.raises(ValidationError, match=field):
        WorkflowComponent("x", add, **bad)


def test_bad_configs_are_named():
    with pytest.raises(ValidationError, match="ncpus"):
        SystemConfig(ncpus=0)
    with pytest.raises(ValidationError, match="max_workers"):
        OrchestratorConfig(max_workers=0)
    with pytest.raises(ValidationError, match="no_such_option"):
        Orchestrator(
            SystemConfig(), OrchestratorConfig(name="thread-pool", options={"no_such_option": 1})
        ).start()


def test_executor_options_as_keywords_are_checked_by_the_executor():
    cfg = OrchestratorConfig(name="dask", threads_per_worker=2, processes=False)
    assert cfg.options == {"threads_per_worker": 2, "processes": False}
    assert cfg.executor_config().threads_per_worker == 2  # nothing started
    with pytest.raises(ValidationError, match="thread_per_worker"):
        OrchestratorConfig(name="dask", thread_per_worker=2)
    with pytest.raises(ValidationError, match="start_method"):
        OrchestratorConfig(name="process-pool", start_method="teleport")


def test_unknown_executor_lists_close_matches():
    with pytest.raises(ValueError, match="did you mean 'thread-pool'"):
        Orchestrator(SystemConfig(), OrchestratorConfig(name="thread-pol")).start()


def test_builtin_executors_are_registered_as_entry_points():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="simai.orchestrator.executors")}
    expected = {"thread-pool", "process-pool", "dask", "ray", "parsl-local", "parsl-htex", "dragon"}
    assert expected <= names
    assert expected <= set(list_executors())


# -- submission errors -----------------------------------------------------------------
def test_unknown_dependency_is_an_error_at_submit(threads):
    threads.client.submit(WorkflowComponent("simulation", add, args={"a": 1, "b": 1}))
    with pytest.raises(ValueError, match="did you mean 'simulation'"):
        threads.client.submit(
            WorkflowComponent("train", add, args={"a": 1, "b": 1}, dependencies=["simulaton"])
        )
    assert "train" not in threads.records()


def test_cycles_are_rejected(threads):
    with pytest.raises(ValueError, match="cycle"):
        threads.client.submit_many(
            [
                WorkflowComponent("a", add, args={"a": 1, "b": 1}, dependencies=["c"]),
                WorkflowComponent("b", add, args={"a": 1, "b": 1}, dependencies=["a"]),
                WorkflowComponent("c", add, args={"a": 1, "b": 1}, dependencies=["b"]),
            ]
        )
    assert threads.records() == {}
    with pytest.raises(ValidationError, match="itself"):
        WorkflowComponent("a", add, dependencies=["a"])


def test_duplicate_names_are_rejected(threads):
    threads.client.submit(WorkflowComponent("a", add, args={"a": 1, "b": 1}))
    with pytest.raises(ValueError, match="already submitted"):
        threads.client.submit(WorkflowComponent("a", add, args={"a": 1, "b": 1}))


def test_impossible_resource_request_is_an_error_at_submit(threads):
    with pytest.raises(ValueError, match="asks for 3 CPUs"):
        threads.client.submit(WorkflowComponent("big", add, ppn=3))
    with pytest.raises(ValueError, match="GPUs"):
        threads.client.submit(WorkflowComponent("gpu", add, num_gpus_per_process=1))


def test_submit_after_stop_is_refused():
    o = Orchestrator(SystemConfig(ncpus=1), OrchestratorConfig(name="thread-pool"))
    o.start()
    o.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        o.client.submit(WorkflowComponent("x", add, args={"a": 1, "b": 1}))


def test_stop_cancels_components_still_waiting(tmp_path):
    o = Orchestrator(SystemConfig(ncpus=1), OrchestratorConfig(name="thread-pool"))
    c = o.start()
    gate = tmp_path / "go"
    first = c.submit(WorkflowComponent("first", hold, args={"event_path": str(gate)}))
    queued = c.submit(WorkflowComponent("queued", add, args={"a": 1, "b": 1}))  # waits for the CPU
    dep = c.submit(WorkflowComponent("dep", add, args={"a": 1, "b": 1}, dependencies=["first"]))
    threading.Timer(0.2, gate.touch).start()
    o.stop(wait=True)
    assert first.result() > 0
    assert o.records()["queued"].status == "cancelled"
    assert o.records()["dep"].status == "cancelled"
    assert queued.exception() is not None and dep.exception() is not None


# -- records ---------------------------------------------------------------------------
def test_records_describe_each_component(threads):
    c = threads.client
    c.submit(WorkflowComponent("ok", add, args={"a": 1, "b": 2}))
    c.submit(WorkflowComponent("bad", add, args={"a": 1}))  # missing argument
    report = threads.wait(timeout=30)
    ok, bad = report.records["ok"], report.records["bad"]
    assert isinstance(ok, ComponentRecord)
    assert (ok.status, ok.result, ok.attempts, ok.error) == ("succeeded", 3, 1, None)
    assert ok.submitted <= ok.started <= ok.ended and ok.duration >= 0
    assert bad.status == "failed" and "TypeError" in bad.error and bad.root_cause == "bad"
    assert c.status("ok").status == "succeeded"
    assert set(c.status()) == {"ok", "bad"}
    assert report.failed == ["bad"] and not report.ok and report.done
    assert "bad: failed - TypeError" in report.summary()
    d = ok.as_dict()
    assert d["status"] == "succeeded" and "result" not in d and d["duration"] >= 0
    with pytest.raises(KeyError, match="did you mean 'ok'"):
        c.status("okk")


def test_wait_with_timeout_reports_what_is_not_done(tmp_path):
    o = Orchestrator(SystemConfig(ncpus=1), OrchestratorConfig(name="thread-pool"))
    c = o.start()
    gate = tmp_path / "go"
    c.submit(WorkflowComponent("held", hold, args={"event_path": str(gate)}))
    report = o.wait(timeout=0.2)
    assert not report.done and report.not_done == ["held"]
    gate.touch()
    assert o.wait(timeout=30).ok
    o.stop()


def test_return_dim_is_checked(threads):
    good = threads.client.submit(WorkflowComponent("two", lambda: (1, 2), return_dim=2))
    bad = threads.client.submit(WorkflowComponent("three", lambda: (1, 2), return_dim=3))
    assert good.result(timeout=30) == (1, 2)
    assert "return_dim=3" in str(bad.exception(timeout=30))


def test_local_command_string(threads, tmp_path):
    out = threads.client.submit(WorkflowComponent("cmd", "echo hello", env_vars={"X": "1"}))
    assert out.result(timeout=30).strip() == "hello"
    bad = threads.client.submit(WorkflowComponent("cmdbad", "sh -c 'echo oops >&2; exit 4'"))
    exc = bad.exception(timeout=30)
    assert "code 4" in str(exc) and "oops" in str(exc)


# -- resources -------------------------------------------------------------------------
def test_component_waits_until_its_cpus_are_free(tmp_path):
    # Two CPUs: 'wide' needs both, so it cannot overlap 'narrow'.
    with Orchestrator(
        SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool", max_workers=4)
    ) as o:
        gate = tmp_path / "go"
        c = o.client
        c.submit(WorkflowComponent("narrow", hold, args={"event_path": str(gate)}))
        c.submit(WorkflowComponent("wide", time.time, ppn=2))
        c.submit(WorkflowComponent("fits", time.time))  # one CPU is still free: runs now
        assert c.submit(WorkflowComponent("probe", time.time)) is not None
        # 'fits' and 'probe' finish on the free CPU while 'narrow' holds the other one.
        deadline = time.monotonic() + 30
        while {o.records()[n].status for n in ("fits", "probe")} != {"succeeded"}:
            assert time.monotonic() < deadline, o.records()
            time.sleep(0.01)
        assert o.records()["wide"].status == "pending"
        gate.touch()
    recs = o.records()
    assert recs["wide"].started >= recs["narrow"].ended
    assert recs["fits"].ended <= recs["narrow"].ended


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to tell pinning apart")
@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_cpu_pinning_is_what_was_allotted(executor):
    cpus = sorted(os.sched_getaffinity(0))[:2]
    with Orchestrator(
        SystemConfig(cpus=cpus), OrchestratorConfig(name=executor, max_workers=2)
    ) as o:
        a = o.client.submit(WorkflowComponent("a", seen, cpu_affinity=[cpus[1]]))
        b = o.client.submit(WorkflowComponent("b", seen, dependencies=["a"]))
        sa, sb = a.result(timeout=60), b.result(timeout=60)
    assert sa["affinity"] == [cpus[1]] and sa["ctx_cpus"] == [cpus[1]]
    assert len(sb["affinity"]) == 1 and sb["affinity"] == sb["ctx_cpus"]
    assert o.records()["a"].cpus == (cpus[1],)


def test_gpu_visibility_variables_declared_ids_fake_gpus():
    # No GPU here: the ids are declared, and we check the variables a process component sees.
    system = SystemConfig(ncpus=2, gpus=["0", "1", "2"], gpu_visibility_var="ZE_AFFINITY_MASK")
    with Orchestrator(system, OrchestratorConfig(name="process-pool", max_workers=2)) as o:
        f = o.client.submit(
            WorkflowComponent("g", seen, num_gpus_per_process=2, env_vars={"MY_FLAG": "on"})
        )
        h = o.client.submit(WorkflowComponent("h", seen, gpu_affinity=[2], dependencies=["g"]))
        g_seen, h_seen = f.result(timeout=60), h.result(timeout=60)
    assert g_seen["env"]["ZE_AFFINITY_MASK"] == "0,1" and g_seen["ctx_gpus"] == ["0", "1"]
    assert g_seen["env"]["MY_FLAG"] == "on"
    assert h_seen["env"]["ZE_AFFINITY_MASK"] == "2"
    assert h_seen["env"]["MY_FLAG"] is None  # restored after 'g' in the reused worker


def test_thread_components_get_env_through_current_task_only(threads):
    got = threads.client.submit(WorkflowComponent("t", seen, env_vars={"MY_FLAG": "x"})).result(30)
    assert got["ctx_env"] == {"MY_FLAG": "x"}
    assert got["env"]["MY_FLAG"] is None and os.environ.get("MY_FLAG") is None


# -- telemetry -------------------------------------------------------------------------
def test_component_span_is_emitted(use_tracer_provider):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    use_tracer_provider(provider)
    with (
        tracer.start_as_current_span("workflow"),
        Orchestrator(
            SystemConfig(ncpus=1), OrchestratorConfig(name="thread-pool", profile=True)
        ) as o,
    ):
        o.client.submit(WorkflowComponent("spanned", add, args={"a": 1, "b": 1}))
        o.client.submit(WorkflowComponent("failing", add, args={"a": 1}))
    spans = {
        s.attributes.get("simai.component"): s
        for s in exporter.get_finished_spans()
        if s.name == "orchestrator.component"
    }
    assert spans["spanned"].attributes["simai.status"] == "succeeded"
    assert spans["spanned"].attributes["simai.executor"] == "thread-pool"
    assert spans["failing"].attributes["simai.status"] == "failed"
    assert [e.name for e in spans["spanned"].events] == ["submitted", "ready", "started", "done"]
    wf = next(s for s in exporter.get_finished_spans() if s.name == "workflow")
    assert spans["spanned"].context.trace_id == wf.context.trace_id


def test_pool_shut_down_under_the_orchestrator_fails_queued_components():
    # thread-pool components are settled by the worker thread itself; one the pool
    # cancels before it runs must still be reported, never left running forever.
    from concurrent.futures import ThreadPoolExecutor

    started, gate = threading.Event(), threading.Event()

    def hold():
        started.set()
        return gate.wait(30)

    pool = ThreadPoolExecutor(1)
    orch = Orchestrator(SystemConfig(ncpus=2), pool)  # a ready executor: not owned
    c = orch.start()
    first = c.submit(WorkflowComponent("first", hold))
    assert started.wait(30)  # the pool's one thread is busy: "queued" stays queued
    queued = c.submit(WorkflowComponent("queued", hold))
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    report = orch.wait(timeout=30)
    assert report.done
    assert first.result(timeout=10) is True
    assert report.records["queued"].status == "failed"
    assert "cancelled" in str(queued.exception(timeout=10))
    orch.stop()


def test_use_tracer_provider_still_reaches_opentelemetry(use_tracer_provider):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    use_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "OpenTelemetry no longer reads the global"
