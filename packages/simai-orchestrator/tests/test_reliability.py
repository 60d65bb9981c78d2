"""Faults and load (issue 8, orchestrator part): killed workers, failing launches,
timeouts, and 10,000 dynamically submitted tasks with bounded scheduler memory."""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc

import cloudpickle
import pytest

from simai.orchestrator import (
    DependencyFailed,
    Orchestrator,
    OrchestratorConfig,
    SystemConfig,
    WorkflowComponent,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.reliability


def die(marker=None):
    """Kill the worker process running this task (only on the first attempt with a marker)."""
    if marker is None or not os.path.exists(marker):
        if marker is not None:
            open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def noop(i=0):
    return i


def fan_out(client, start, n):
    for i in range(start, start + n):
        client.submit(WorkflowComponent(f"t{i}", noop, args={"i": i}))
    return n


def boom():
    raise ZeroDivisionError("bad physics")


KILLABLE = [
    "process-pool",
    pytest.param("dask", marks=pytest.mark.dask),
    pytest.param("ray", marks=pytest.mark.ray),
    pytest.param("parsl-htex", marks=pytest.mark.parsl),
]


@pytest.mark.parametrize("engine", KILLABLE, indirect=True)
def test_killed_worker_fails_component_and_dependents(orch):
    c = orch.client
    victim = c.submit(WorkflowComponent("victim", die))
    child = c.submit(WorkflowComponent("child", noop, dependencies=["victim"]))
    report = orch.wait(timeout=120)
    assert report.done
    assert victim.exception() is not None
    assert isinstance(child.exception(), DependencyFailed)
    assert report.records["child"].root_cause == "victim"
    # the engine recovers: later components run
    assert c.submit(WorkflowComponent("later", noop, args={"i": 5})).result(timeout=120) == 5


@pytest.mark.parametrize("engine", KILLABLE, indirect=True)
def test_killed_worker_is_retried(orch, tmp_path):
    c = orch.client
    fut = c.submit(
        WorkflowComponent("phoenix", die, args={"marker": str(tmp_path / "m")}, retries=1)
    )
    after = c.submit(WorkflowComponent("after", noop, args={"i": 1}, dependencies=["phoenix"]))
    assert fut.result(timeout=120) == "survived"
    assert after.result(timeout=120) == 1
    assert orch.records()["phoenix"].attempts == 2


@pytest.mark.mpi
def test_every_kind_of_failure_is_named_in_the_report(have_mpiexec):
    with Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool")) as o:
        c = o.client
        c.submit(WorkflowComponent("raises", boom))
        c.submit(
            WorkflowComponent(
                "mpi-exit", "sh -c 'echo rank failed >&2; exit 9'", type="remote", ppn=2
            )
        )
        c.submit(WorkflowComponent("too-slow", "sleep 20", type="remote", ppn=1, timeout=0.5))
        c.submit(WorkflowComponent("downstream", noop, dependencies=["raises", "mpi-exit"]))
    report = o.wait()
    recs = report.records
    assert sorted(report.failed) == ["downstream", "mpi-exit", "raises", "too-slow"]
    assert "ZeroDivisionError: bad physics" in recs["raises"].error
    assert "exited with code" in recs["mpi-exit"].error and "rank failed" in recs["mpi-exit"].error
    assert "ComponentTimeout" in recs["too-slow"].error
    assert recs["downstream"].root_cause in ("raises", "mpi-exit")
    summary = report.summary()
    for name in ("raises", "mpi-exit", "too-slow", "downstream"):
        assert f"{name}: failed" in summary


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_ten_thousand_dynamic_tasks_with_bounded_scheduler_memory(executor):
    n_parents, per_parent = 10, 1000
    with Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name=executor, max_workers=2)) as o:
        c = o.client
        c.submit(WorkflowComponent("warm", noop)).result(timeout=60)
        gc.collect()
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        for p in range(n_parents):
            c.submit(
                WorkflowComponent(
                    f"parent{p}",
                    fan_out,
                    args={"client": c, "start": p * per_parent, "n": per_parent},
                )
            )
        report = o.wait(timeout=600)
        gc.collect()
        grown, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sched = o._scheduler
        live, queued = sched.live_count, len(sched._resource_queue)
    assert report.done and report.ok, report.summary()
    assert len(report.records) == 1 + n_parents + n_parents * per_parent
    # Nothing but a compact record stays behind per finished component.
    assert live == 0 and queued == 0
    per_task = (grown - base) / (n_parents * per_parent)
    print(f"{executor}: {per_task:.0f} bytes retained per finished task")
    assert per_task < 2048, f"{per_task:.0f} bytes retained per finished task"
