"""Run under the Dragon launcher by test_dragon_placement.py: ``dragon dragon_placement.py OUT``.

Places components with ``nodes``/``cpu_affinity`` through the ``dragon`` executor and writes
where they ran, as JSON, for the test to assert on.
"""

import json
import os
import socket
import sys

from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent


def where():
    from dragon.native.machine import current

    return {
        "host": current().hostname,  # Dragon's name for the node ("localhost" on one node)
        "os_host": socket.gethostname(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "pid": os.getpid(),
    }


def main(out_path):
    from dragon.native.machine import Node, System

    host = Node(System().nodes[0]).hostname
    res = {
        "dragon_host": host,
        "os_host": socket.gethostname(),
        "ncpus": os.cpu_count(),
        "driver_pid": os.getpid(),
    }
    with Orchestrator(SystemConfig(ncpus=1), OrchestratorConfig(name="dragon", max_workers=1)) as o:
        c = o.client
        placed = c.submit(WorkflowComponent("placed", where, nodes=[host], cpu_affinity=[1]))
        plain = c.submit(WorkflowComponent("plain", where))
        c.submit(WorkflowComponent("nowhere", where, nodes=["no-such-host.invalid"]))
        c.submit(WorkflowComponent("tile", where, gpu_affinity=["0.1"]))
        c.submit(WorkflowComponent("nocore", where, cpu_affinity=[4096]))
        report = o.wait(timeout=120)
        res["placed"] = placed.result(1)
        res["plain"] = plain.result(1)
        res["failed"] = sorted(report.failed)
        res["nowhere_error"] = report.records["nowhere"].error
        res["tile_error"] = report.records["tile"].error
        res["nocore_error"] = report.records["nocore"].error
    with open(out_path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1])
