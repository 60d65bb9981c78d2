"""Engines as a cluster user runs them, on the virtual cluster (127.0.0.11, 127.0.0.12).

The same workflow file (a dependency, a staged array, a dynamic submission and a failing
component) runs on a Dask scheduler whose workers were started beforehand on two node
addresses (attached through ``scheduler_file``), on a Ray head started beforehand with
``ray start`` (attached through ``address``), and on Parsl HTEX with two blocks,
everything written in the workflow file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TASKS = """
import os

import numpy as np


def where():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def produce(server_info):
    from simai.datastore import DataStore

    DataStore("produce", server_info=server_info).stage_write("field", np.arange(1000.0))
    return where()


def consume(server_info):
    from simai.datastore import DataStore

    return float(DataStore("consume", server_info=server_info).stage_read("field", timeout=60).sum())


def child(x):
    return x * 2


def parent(client):
    from simai.orchestrator import WorkflowComponent

    return client.submit(WorkflowComponent("child", child, args={"x": 21})).result(timeout=120)


def broken():
    raise RuntimeError("member diverged")
"""

COMPONENTS = """system: {ncpus: 4}
server: {type: filesystem}
components:
  - {name: produce, function: tasks.py:produce}
  - {name: consume, function: tasks.py:consume, dependencies: [produce]}
  - {name: parent, function: tasks.py:parent}
  - {name: broken, function: tasks.py:broken}
"""


def _flow(tmp_path: Path, orchestrator: str) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"version: 1\nname: engines\norchestrator: {orchestrator}\n{COMPONENTS}")
    return flow


def _check_run(cli, run_dir: Path, proc) -> dict:
    assert (run_dir / "trace.json").exists(), proc.stdout + proc.stderr
    result = cli.result_of(run_dir)
    assert cli.statuses(result) == {
        "produce": "succeeded",
        "consume": "succeeded",
        "parent": "succeeded",
        "broken": "failed",
        "child": "succeeded",
    }
    values = {c["name"]: c.get("value") for c in result["components"]}
    assert values["consume"] == 499500.0 and values["parent"] == 42
    broken = next(c for c in result["components"] if c["name"] == "broken")
    assert "member diverged" in broken["error"]
    trace = (run_dir / "trace.json").read_text()
    for name in ("produce", "consume", "parent", "child", "broken"):
        assert f'"{name}"' in trace, f"no span of {name} in the run's trace"
    return values


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


@pytest.mark.dask
@pytest.mark.slow
def test_dask_workers_started_before_the_run_attached_through_a_scheduler_file(cli, tmp_path):
    distributed = pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [
        _start(
            [
                *dask,
                "--host",
                "127.0.0.11",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp_path / "scheduler.log",
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler never wrote its file"
            time.sleep(0.1)
        for node in ("127.0.0.11", "127.0.0.12"):
            procs.append(
                _start(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--host",
                        node,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path / node),
                    ],
                    tmp_path / f"worker-{node}.log",
                )
            )
        with distributed.Client(scheduler_file=str(sched_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        flow = _flow(tmp_path, f"{{name: dask, scheduler_file: {sched_file}}}")
        proc = cli.run("run", str(flow), "--out", str(tmp_path / "run"), timeout=240)
        assert proc.returncode != 0  # one component failed, and the run says so
        values = _check_run(cli, tmp_path / "run", proc)
        assert values["produce"].split(":")[1].lstrip("/") in ("127.0.0.11", "127.0.0.12")
        # The engine we attached to is still there: an attached cluster is not ours to stop.
        assert all(p.poll() is None for p in procs)
    finally:
        _stop(procs)


@pytest.mark.parsl
@pytest.mark.slow
def test_parsl_htex_with_two_blocks_from_the_workflow_file(cli, tmp_path):
    pytest.importorskip("parsl")
    flow = _flow(
        tmp_path,
        "{name: parsl-htex, max_workers: 1, init_blocks: 2, min_blocks: 2, max_blocks: 2}",
    )
    proc = cli.run("run", str(flow), "--out", str(tmp_path / "run"), timeout=240)
    assert proc.returncode != 0, proc.stdout
    _check_run(cli, tmp_path / "run", proc)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["components"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, auth: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "RAY_USAGE_STATS_ENABLED": "0",
        **auth,
    }
    return subprocess.run(
        [os.path.join(bindir, "ray"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=timeout,
    )


def _ours(psutil, marker: str) -> list:
    """Processes of this head: Ray passes its session directory (under our temp dir) to
    every process it starts."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in a for a in p.info["cmdline"] or ()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.mark.ray
@pytest.mark.slow
def test_ray_head_started_before_the_run_attached_through_address(cli, tmp_path):
    pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    # Ray's Unix sockets live under the temp dir and must stay under 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="simai-ray-")
    address = f"127.0.0.1:{_free_port()}"
    # Ray's token authentication, as a job script would export it; the token stays out of
    # the user's ~/.ray, and a driver attaching by address needs it set explicitly.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    try:
        started = _ray(
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={address.rsplit(':', 1)[1]}",
            "--num-cpus=2",
            "--disable-usage-stats",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            auth=auth,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert _ours(psutil, temp_dir), "ray start reported success but started nothing"
        flow = _flow(tmp_path, f"{{name: ray, address: '{address}'}}")
        proc = cli.run("run", str(flow), "--out", str(tmp_path / "run"), timeout=240, env=auth)
        assert proc.returncode != 0  # one component failed, and the run says so
        _check_run(cli, tmp_path / "run", proc)
        # The run ended (its orchestrator stopped) and the cluster we attached to is still
        # up: an attached cluster is not ours to stop.
        status = _ray("status", f"--address={address}", auth=auth, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        _ray("stop", "--force", auth=auth, timeout=60)
        deadline = time.monotonic() + 30
        while (left := _ours(psutil, temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            assert not left, f"ray stop left {[p.pid for p in left]}"
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
