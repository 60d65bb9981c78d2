"""Run under the Dragon launcher by test_dragon.py: ``dragon dragon_contract.py OUT.json``.

The contract checks of test_executor_contract.py, on the ``dragon`` executor, with the
outcome written as JSON for the test to assert on.
"""

import json
import os
import sys
import time

from simai.orchestrator import (
    ComponentTimeout,
    DependencyFailed,
    Orchestrator,
    OrchestratorConfig,
    SystemConfig,
    WorkflowComponent,
)


def add(a, b):
    return a + b


def fail():
    raise ValueError("dragon boom")


def nap(seconds):
    time.sleep(seconds)


def spawn(client):
    fut = client.submit(WorkflowComponent("inner", add, args={"a": 40, "b": 2}))
    client.submit(
        WorkflowComponent("after-parent", add, args={"a": 1, "b": 1}, dependencies=["dynamic"])
    )
    return fut.result(timeout=60)


def main(out_path):
    res = {}
    with Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="dragon", max_workers=2)) as o:
        c = o.client
        res["pid_differs"] = c.submit(WorkflowComponent("pid", os.getpid)).result(60) != os.getpid()
        c.submit_many(
            [
                WorkflowComponent("d", add, args={"a": 3, "b": 3}, dependencies=["b", "c"]),
                WorkflowComponent("b", add, args={"a": 1, "b": 1}, dependencies=["a"]),
                WorkflowComponent("c", add, args={"a": 2, "b": 2}, dependencies=["a"]),
                WorkflowComponent("a", add, args={"a": 0, "b": 0}),
            ]
        )
        for i in range(5):
            c.submit(
                WorkflowComponent(
                    f"link{i}",
                    add,
                    args={"a": i, "b": 1},
                    dependencies=[f"link{i - 1}"] if i else ["d"],
                )
            )
        res["dynamic"] = c.submit(WorkflowComponent("dynamic", spawn, args={"client": c})).result(
            120
        )
        c.submit(WorkflowComponent("bad", fail))
        dep = c.submit(WorkflowComponent("dep", add, args={"a": 1, "b": 1}, dependencies=["bad"]))
        slow = c.submit(WorkflowComponent("slow", nap, args={"seconds": 2}, timeout=0.3))
        report = o.wait(timeout=120)
        recs = report.records
        res["done"] = report.done
        res["failed"] = sorted(report.failed)
        res["diamond_order"] = recs["d"].started >= max(recs["b"].ended, recs["c"].ended)
        res["chain"] = [recs[f"link{i}"].result for i in range(5)]
        res["chain_order"] = all(
            recs[f"link{i}"].started >= recs[f"link{i - 1}"].ended for i in range(1, 5)
        )
        res["after_parent"] = recs["after-parent"].status
        res["dep_error"] = (
            isinstance(dep.exception(), DependencyFailed) and dep.exception().root_cause
        )
        res["timeout"] = isinstance(slow.exception(), ComponentTimeout)
        res["executor"] = recs["a"].executor
    with open(out_path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1])
