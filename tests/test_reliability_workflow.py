"""Faults in the data plane of a running workflow (issue 8): a redis-server killed while
components stage through it, and a user's workflow run under injected faults. Each
failure is reported per component, nothing hangs, and the server can be restarted."""

from __future__ import annotations

import sys
import time

import cloudpickle
import numpy as np
import pytest

from simai.bench import Workflow
from simai.datastore import DataStore, ServerManager, faults, server_registry
from simai.orchestrator import OrchestratorConfig, SystemConfig

# process-pool workers cannot import this test module by name: ship its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.reliability

# A reader that waited instead of reporting a dead server would sit for this long;
# the launch is given far less, so a hang fails the test instead of passing slowly.
PATIENT_READ_S = 600
NO_HANG_S = 90


def produce(server_info, steps, period=0.02):
    ds = DataStore("sim", server_info=server_info)
    for i in range(steps):
        ds.stage_write(f"step/{i}", np.full(1000, i, dtype=np.int64))
        time.sleep(period)
    return steps


def consume(server_info, steps, timeout=PATIENT_READ_S):
    ds = DataStore("train", server_info=server_info)
    total = 0
    for i in range(steps):
        a = ds.stage_read(f"step/{i}", timeout=timeout)
        assert a.shape == (1000,) and (a == i).all(), f"step {i} came back wrong"
        total += int(a[0])
    return total


def analyse(n=0):
    return f"analysed {n}"


def write_n(server_info, n, prefix="k"):
    ds = DataStore("w", server_info=server_info)
    for i in range(n):
        ds.stage_write(f"{prefix}/{i}", np.arange(i + 1))
    return n


def read_n(server_info, n, prefix="k", timeout=1.0):
    ds = DataStore("r", server_info=server_info)
    return sum(int(ds.stage_read(f"{prefix}/{i}", timeout=timeout).sum()) for i in range(n))


def _workflow(executor: str, name: str) -> Workflow:
    return Workflow(
        OrchestratorConfig(name=executor, max_workers=2), SystemConfig(ncpus=4), name=name
    )


@pytest.mark.redis
@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_redis_killed_mid_workflow_fails_the_components_and_restarts(executor, tmp_path):
    cfg = server_registry.create_config("redis", socket_timeout=2, connect_timeout=1)
    with ServerManager("wf-redis", config=cfg) as sm:
        info = sm.get_server_info()
        w = _workflow(executor, "doomed")
        w.register_component("sim", produce, args={"server_info": info, "steps": 10_000})
        w.register_component("train", consume, args={"server_info": info, "steps": 10_000})
        w.register_component("post", analyse, dependencies=["train"])
        launch = w.launch_async(run_dir=tmp_path / "doomed")
        # kill it when both components are really staging through it
        DataStore("probe", server_info=info).stage_read("step/5", timeout=NO_HANG_S)
        sm.kill_server()
        result = launch.result(timeout=NO_HANG_S)  # returns: nobody waits on the dead server

        assert not result.ok and sorted(c.name for c in result.failed) == ["post", "sim", "train"]
        for name in ("sim", "train"):
            err = result[name].error
            assert "BackendUnavailableError" in err and "unreachable" in err, f"{name}: {err}"
        assert "train" in result["post"].error  # the dependent names its failed dependency

        # the manager restarts it (same address and password) and the next run works
        assert not sm.is_running()
        assert sm.restart_server() == info
        again = _workflow(executor, "after-restart")
        again.register_component(
            "sim", produce, args={"server_info": info, "steps": 20, "period": 0}
        )
        again.register_component("train", consume, args={"server_info": info, "steps": 20})
        again.register_component("post", analyse, args={"n": 20}, dependencies=["train"])
        result = again.launch(timeout=NO_HANG_S, run_dir=tmp_path / "again")
        assert result.ok, [(c.name, c.error) for c in result.failed]
        assert result["train"].value == sum(range(20)) and result["post"].value == "analysed 20"


@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_a_workflow_under_injected_faults_is_reported_not_hung(executor, tmp_path):
    with ServerManager("fi", type="filesystem", server_address=str(tmp_path / "stage")) as sm:
        info = sm.get_server_info()
        w = _workflow(executor, "faulty")
        # a lossy link: every write "succeeds" and is lost; the reader must time out naming the key
        w.register_component(
            "lossy-writer",
            write_n,
            args={"server_info": faults.inject(info, drop=1.0), "n": 3, "prefix": "lost"},
        )
        w.register_component(
            "starved-reader",
            read_n,
            args={"server_info": info, "n": 3, "prefix": "lost", "timeout": 0.5},
            dependencies=["lossy-writer"],
        )
        # a store that is down, and one that dies after three operations
        w.register_component(
            "down", write_n, args={"server_info": faults.inject(info, fail=1.0), "n": 1}
        )
        w.register_component("after-down", analyse, dependencies=["down"])
        w.register_component(
            "dying", write_n, args={"server_info": faults.inject(info, fail_after=3), "n": 10}
        )
        # slow but working: succeeds; too slow for its timeout: failed as a timeout
        w.register_component(
            "slow",
            write_n,
            args={"server_info": faults.inject(info, delay=0.02), "n": 5, "prefix": "s"},
        )
        w.register_component(
            "slow-reader",
            read_n,
            args={"server_info": info, "n": 5, "prefix": "s"},
            dependencies=["slow"],
        )
        w.register_component(
            "too-slow",
            write_n,
            args={"server_info": faults.inject(info, delay=0.4), "n": 3, "prefix": "t"},
            timeout=0.3,
        )
        launch = w.launch_async(run_dir=tmp_path / "run")
        result = launch.result(timeout=NO_HANG_S)

    status = {c.name: c.status for c in result}
    assert status == {
        "lossy-writer": "succeeded",
        "starved-reader": "failed",
        "down": "failed",
        "after-down": "failed",
        "dying": "failed",
        "slow": "succeeded",
        "slow-reader": "succeeded",
        "too-slow": "failed",
    }, {c.name: c.error for c in result}
    assert (
        "StagedDataTimeout" in result["starved-reader"].error
        and "'lost/0'" in result["starved-reader"].error
    )
    assert "injected fault" in result["down"].error
    assert "down" in result["after-down"].error
    assert "injected fault: backend is down" in result["dying"].error
    assert result["slow-reader"].value == sum(sum(range(i + 1)) for i in range(5))
    assert "timeout" in result["too-slow"].error.lower()
    assert not result.ok


def sleep_for(s):
    time.sleep(s)
    return s


@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_a_timed_out_local_component_does_not_hold_the_launch(executor, tmp_path):
    w = _workflow(executor, "stuck")
    w.register_component("stuck", sleep_for, args={"s": 8}, timeout=0.3)
    result = w.launch_async(run_dir=tmp_path).result(timeout=5)  # far below the 8 s it sleeps
    assert result["stuck"].status == "failed"
