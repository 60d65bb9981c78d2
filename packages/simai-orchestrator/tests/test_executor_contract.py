"""The contract every executor honours, run against each one (see conftest.ENGINES).

Dependencies, failures, retries and timeouts are the scheduler's job, so the same
assertions must hold whether a component runs in a thread, a process, a Dask or Ray
worker, or a Parsl worker (Dragon: test_dragon.py runs these under the dragon launcher).
"""

from __future__ import annotations

import os
import sys
import time

import cloudpickle

from simai.orchestrator import (
    ComponentTimeout,
    DependencyFailed,
    WorkflowComponent,
)

# Test-module functions travel by value (workers cannot import this file by name).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a, b):
    return a + b


def where():
    return os.getpid()


def fail(msg="boom"):
    raise ValueError(msg)


def nap(seconds):
    time.sleep(seconds)
    return seconds


def fail_once(marker):
    # State must survive across processes: the first attempt leaves a file behind.
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


def spawn_children(client, n, parent):
    futs = [
        client.submit(
            WorkflowComponent(
                f"child{i}", add, args={"a": i, "b": 100}, dependencies=[parent, "before"]
            )
        )
        for i in range(n)
    ]
    return len(futs)


def spawn_and_wait(client):
    fut = client.submit(WorkflowComponent("inner", add, args={"a": 20, "b": 22}))
    return fut.result(timeout=60) + 1


def test_static_dag_fan_out_fan_in(orch):
    c = orch.client
    c.submit(WorkflowComponent("root", add, args={"a": 1, "b": 1}))
    for i in range(4):
        c.submit(WorkflowComponent(f"mid{i}", add, args={"a": i, "b": 0}, dependencies=["root"]))
    sink = c.submit(
        WorkflowComponent(
            "sink", add, args={"a": 0, "b": 0}, dependencies=[f"mid{i}" for i in range(4)]
        )
    )
    report = orch.wait(timeout=60)
    assert report.ok, report.summary()
    assert sink.result() == 0
    recs = report.records
    assert [recs[f"mid{i}"].result for i in range(4)] == [0, 1, 2, 3]
    for i in range(4):
        assert recs[f"mid{i}"].started >= recs["root"].ended
        assert recs["sink"].started >= recs[f"mid{i}"].ended


def test_chain_runs_in_order(orch):
    c = orch.client
    n = 15
    for i in range(n):
        c.submit(
            WorkflowComponent(
                f"link{i}", add, args={"a": i, "b": 1}, dependencies=[f"link{i - 1}"] if i else []
            )
        )
    report = orch.wait(timeout=60)
    assert report.ok, report.summary()
    recs = report.records
    for i in range(1, n):
        assert recs[f"link{i}"].started >= recs[f"link{i - 1}"].ended
    assert [recs[f"link{i}"].result for i in range(n)] == list(range(1, n + 1))


def test_diamond_submitted_in_any_order(orch):
    # submit_many takes components in any order and sorts them itself.
    futs = orch.client.submit_many(
        [
            WorkflowComponent("d", add, args={"a": 3, "b": 3}, dependencies=["b", "c"]),
            WorkflowComponent("b", add, args={"a": 1, "b": 1}, dependencies=["a"]),
            WorkflowComponent("c", add, args={"a": 2, "b": 2}, dependencies=["a"]),
            WorkflowComponent("a", add, args={"a": 0, "b": 0}),
        ]
    )
    assert [f.result(timeout=60) for f in futs] == [6, 2, 4, 0]
    recs = orch.records()
    assert recs["d"].started >= max(recs["b"].ended, recs["c"].ended)
    assert min(recs["b"].started, recs["c"].started) >= recs["a"].ended


def test_dynamic_submission_from_inside_a_task(orch):
    c = orch.client
    c.submit(WorkflowComponent("before", add, args={"a": 0, "b": 0})).result(timeout=60)
    parent = c.submit(
        WorkflowComponent("parent", spawn_children, args={"client": c, "n": 3, "parent": "parent"})
    )
    assert parent.result(timeout=60) == 3
    report = orch.wait(timeout=60)
    assert report.ok, report.summary()
    recs = report.records
    for i in range(3):
        # depends on the (then running) parent and the (already finished) 'before'
        assert recs[f"child{i}"].result == 100 + i
        assert recs[f"child{i}"].started >= recs["parent"].ended


def test_task_waits_for_a_component_it_submitted(orch):
    c = orch.client
    fut = c.submit(WorkflowComponent("outer", spawn_and_wait, args={"client": c}))
    assert fut.result(timeout=60) == 43
    assert orch.records()["inner"].status == "succeeded"


def test_failure_fails_dependents_naming_the_root_cause(orch):
    c = orch.client
    c.submit(WorkflowComponent("bad", fail, args={"msg": "broken input"}))
    c.submit(WorkflowComponent("mid", add, args={"a": 1, "b": 1}, dependencies=["bad"]))
    last = c.submit(WorkflowComponent("last", add, args={"a": 1, "b": 1}, dependencies=["mid"]))
    ok = c.submit(WorkflowComponent("independent", add, args={"a": 1, "b": 1}))
    report = orch.wait(timeout=60)
    assert report.done and not report.ok
    assert sorted(report.failed) == ["bad", "last", "mid"]
    assert ok.result() == 2
    exc = last.exception()
    assert isinstance(exc, DependencyFailed)
    assert exc.root_cause == "bad" and exc.dependency == "mid"
    assert "'bad'" in str(exc) and "broken input" in str(exc)
    assert report.records["last"].root_cause == "bad"
    assert "ValueError" in report.records["bad"].error
    # a component submitted after its dependency failed fails at once, too
    late = c.submit(WorkflowComponent("late", add, args={"a": 1, "b": 1}, dependencies=["bad"]))
    assert isinstance(late.exception(timeout=10), DependencyFailed)


def test_timeout_fails_component_and_dependents(orch):
    c = orch.client
    slow = c.submit(WorkflowComponent("slow", nap, args={"seconds": 2.0}, timeout=0.3))
    after = c.submit(WorkflowComponent("after", add, args={"a": 1, "b": 1}, dependencies=["slow"]))
    report = orch.wait(timeout=60)
    assert isinstance(slow.exception(), ComponentTimeout)
    assert "'slow'" in str(slow.exception()) and "0.3" in str(slow.exception())
    assert isinstance(after.exception(), DependencyFailed)
    assert report.records["slow"].status == "failed"
    assert report.records["after"].root_cause == "slow"


def test_retries_rerun_a_failed_attempt(orch, tmp_path):
    fut = orch.client.submit(
        WorkflowComponent("flaky", fail_once, args={"marker": str(tmp_path / "m")}, retries=2)
    )
    assert fut.result(timeout=60) == "second attempt"
    rec = orch.records()["flaky"]
    assert rec.attempts == 2 and rec.status == "succeeded"


def test_components_run_where_the_executor_says(orch, engine):
    pid = orch.client.submit(WorkflowComponent("where", where)).result(timeout=60)
    in_process = engine[0] in ("thread-pool", "parsl-local")
    assert (pid == os.getpid()) == in_process


class MinimalTapsShapedConfig:
    """TaPS is not on the package registries: this is the shape TaPS' ExecutorConfig has."""

    name = "taps-minimal"

    def get_executor(self):
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(2)


def test_taps_shaped_config_minimal_object():
    from simai.orchestrator import Orchestrator, SystemConfig

    with Orchestrator(SystemConfig(ncpus=2), MinimalTapsShapedConfig()) as o:
        o.client.submit(WorkflowComponent("x", add, args={"a": 1, "b": 2}))
        o.client.submit(WorkflowComponent("y", add, args={"a": 3, "b": 4}, dependencies=["x"]))
    recs = o.records()
    assert recs["y"].result == 7 and recs["y"].executor == "taps-minimal"
