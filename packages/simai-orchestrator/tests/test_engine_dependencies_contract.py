"""`EngineDependencies`: executors that start a dependent inside the engine (Dask, Ray, parsl-htex).

The DAG still decides: it hands a plain component to the engine as soon as every
unfinished dependency is running there, with the engine's own futures, and the engine
starts it the moment they finish. These tests prove the early hand-over happens (the
dependent is "running" while its dependency still is), that failures still name the
root cause, that retries/timeouts keep the ordinary path, and that CPU slots still bound
what runs.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cloudpickle
import pytest

from simai.orchestrator import DependencyFailed, WorkflowComponent
from simai.orchestrator.protocols import EngineDependencies

cloudpickle.register_pickle_by_value(sys.modules[__name__])

ENGINE_SIDE = [
    pytest.param("dask", marks=pytest.mark.dask),
    pytest.param("ray", marks=pytest.mark.ray),
    pytest.param("parsl-htex", marks=pytest.mark.parsl),
]


def gate(path, fail=False):
    """Block until ``path`` exists (bounded), then return (or raise)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    if fail:
        raise ValueError("gate broke")
    return "opened"


def add(a, b):
    return a + b


def release(path) -> None:
    open(path, "w").close()


def test_only_engines_with_submit_after_have_the_capability(engine):
    name, executor = engine
    # parsl-local runs its DataFlowKernel in this process: no round trip to save.
    engine_side = ("dask", "ray", "parsl-htex")
    assert isinstance(executor, EngineDependencies) == (name in engine_side)
    assert not isinstance(ThreadPoolExecutor(1), EngineDependencies)


@pytest.mark.parametrize("engine", ENGINE_SIDE, indirect=True)
def test_dependent_is_handed_to_the_engine_before_its_dependency_ends(orch, tmp_path):
    c = orch.client
    door = str(tmp_path / "door")
    first = c.submit(WorkflowComponent("first", gate, args={"path": door}))
    second = c.submit(
        WorkflowComponent("second", add, args={"a": 1, "b": 2}, dependencies=["first"])
    )
    third = c.submit(
        WorkflowComponent("third", add, args={"a": 3, "b": 4}, dependencies=["second"])
    )
    other = c.submit(WorkflowComponent("other", gate, args={"path": door}))
    st = c.status()
    # Handed over already, though "first" has not finished: the engine holds them.
    assert st["first"].status == "running"
    assert st["second"].status == "running" and st["third"].status == "running"
    assert st["second"].ready is None  # its dependency is not met yet
    # The chain shares first's CPU slot (they never run at once), so "other" got the
    # second slot of ncpus=2 and a further independent component must wait for one.
    assert st["other"].status == "running"
    waiting = c.submit(WorkflowComponent("waiting", add, args={"a": 0, "b": 0}))
    assert c.status("waiting").status == "pending"
    release(door)
    assert third.result(timeout=60) == 7 and second.result(timeout=60) == 3
    assert first.result(timeout=60) == "opened" and other.result(timeout=60) == "opened"
    assert waiting.result(timeout=60) == 0
    rec = orch.records()
    # The engine started each one after its dependency ended (worker clocks, one node).
    assert rec["second"].started >= rec["first"].ended
    assert rec["third"].started >= rec["second"].ended
    assert rec["second"].ready is not None and rec["second"].attempts == 1


@pytest.mark.parametrize("engine", ENGINE_SIDE, indirect=True)
def test_engine_side_failure_names_the_root_cause(orch, tmp_path):
    c = orch.client
    door = str(tmp_path / "door")
    c.submit(WorkflowComponent("root", gate, args={"path": door, "fail": True}))
    mid = c.submit(WorkflowComponent("mid", add, args={"a": 1, "b": 1}, dependencies=["root"]))
    last = c.submit(WorkflowComponent("last", add, args={"a": 1, "b": 1}, dependencies=["mid"]))
    assert c.status("mid").status == "running"  # with the engine, behind "root"
    release(door)
    report = orch.wait(timeout=60)
    assert report.done and sorted(report.failed) == ["last", "mid", "root"]
    assert "ValueError" in report.records["root"].error_type  # Ray: RayTaskError(ValueError)
    for name, fut, dep in (("mid", mid, "root"), ("last", last, "mid")):
        exc = fut.exception(timeout=10)
        assert isinstance(exc, DependencyFailed), exc
        assert exc.root_cause == "root" and exc.dependency == dep
        assert "gate broke" in str(exc)
        assert report.records[name].root_cause == "root"
        assert report.records[name].error_type == "DependencyFailed"


@pytest.mark.parametrize("engine", ENGINE_SIDE, indirect=True)
def test_retries_and_timeouts_keep_the_ordinary_path(orch, tmp_path):
    c = orch.client
    door = str(tmp_path / "door")
    c.submit(WorkflowComponent("dep", gate, args={"path": door}))
    retried = c.submit(
        WorkflowComponent("retried", add, args={"a": 1, "b": 1}, dependencies=["dep"], retries=1)
    )
    timed = c.submit(
        WorkflowComponent("timed", add, args={"a": 2, "b": 2}, dependencies=["dep"], timeout=60)
    )
    # Neither may reach the engine early: a retry or a timeout is decided here.
    assert c.status("retried").status == "pending"
    assert c.status("timed").status == "pending"
    # A dependent of a component with retries waits for it too: the engine would see
    # the failed first attempt and not the retry.
    c.submit(WorkflowComponent("flaky", gate, args={"path": door}, retries=1))
    behind = c.submit(
        WorkflowComponent("behind", add, args={"a": 3, "b": 3}, dependencies=["flaky"])
    )
    assert c.status("behind").status == "pending"
    release(door)
    assert retried.result(timeout=60) == 2 and timed.result(timeout=60) == 4
    assert behind.result(timeout=60) == 6
    assert orch.wait(timeout=60).ok
