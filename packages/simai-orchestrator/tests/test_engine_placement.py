"""Engines that place tasks on their own workers are not throttled by the driver's slots.

A ``SystemConfig`` describes one node. On Dask, Ray and Parsl HTEX the engine's workers
(possibly on other nodes) are the slots of ``local`` components: with ``ncpus=1`` two
components that can only finish together (each waits for the other's marker file) must
still both run, and none is pinned to a CPU of the driver.
"""

from __future__ import annotations

import os
import sys
import time

import cloudpickle
import pytest

from simai.orchestrator import Orchestrator, SystemConfig, WorkflowComponent
from simai.orchestrator.protocols import PlacesTasks

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def meet(here: str, other: str, limit_s: float) -> bool:
    """Leave a marker and wait, bounded, for the other component's marker."""
    open(here, "w").close()
    deadline = time.monotonic() + limit_s
    while not os.path.exists(other):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never appeared: the two did not run at the same time")
        time.sleep(0.02)
    return True


def test_local_components_on_an_engine_take_its_workers_not_the_drivers_slots(engine, tmp_path):
    name, executor = engine
    if not (isinstance(executor, PlacesTasks) and executor.places_tasks()):
        pytest.skip(f"{name} runs tasks on the driver's node: SystemConfig slots apply")
    orch = Orchestrator(SystemConfig(name="one-core", ncpus=1, cpus=[0]), executor)
    orch.start()
    try:
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        orch.client.submit(
            WorkflowComponent("left", meet, args={"here": a, "other": b, "limit_s": 30})
        )
        orch.client.submit(
            WorkflowComponent("right", meet, args={"here": b, "other": a, "limit_s": 30})
        )
        report = orch.wait(timeout=90)
    finally:
        orch.stop()
    assert report.ok, report.summary()
    for rec in report.records.values():
        assert rec.cpus is None, f"{rec.name} was pinned to the driver's CPUs {rec.cpus}"


def test_the_driver_s_slots_still_bound_a_thread_pool():
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(4)
    orch = Orchestrator(SystemConfig(name="one-core", ncpus=1), pool)
    orch.start()
    try:
        for i in range(3):
            orch.client.submit(WorkflowComponent(f"c{i}", time.perf_counter))
        report = orch.wait(timeout=30)
    finally:
        orch.stop()
        pool.shutdown()
    assert report.ok, report.summary()
    spans = sorted((r.started, r.ended) for r in report.records.values())
    # One slot: each component starts only after the one before it finished.
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans
