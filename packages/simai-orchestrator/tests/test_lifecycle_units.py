"""How an orchestrator stops: interrupt(), signals, timeouts, stop(wait=True), and the
authenticated submission channel under hostile peers."""

from __future__ import annotations

import math
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import cloudpickle
import pytest
from pydantic import ValidationError

from simai.orchestrator import (
    Orchestrator,
    OrchestratorConfig,
    SystemConfig,
    WorkflowComponent,
)
from simai.orchestrator.errors import CommandFailed, RemoteError, RemoteLaunchError

psutil = pytest.importorskip("psutil", reason="process checks use psutil")

cloudpickle.register_pickle_by_value(sys.modules[__name__])

GUARD_S = 60  # bounds every wait; a correct run needs a small fraction of it


def _threads(n: int = 4, ncpus: int = 4) -> Orchestrator:
    orch = Orchestrator(
        SystemConfig(name="t", ncpus=ncpus), OrchestratorConfig(name="thread-pool", max_workers=n)
    )
    orch.start()
    return orch


def _sleep_children() -> list:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "sleep"]


def test_interrupt_cancels_pending_and_ends_running_components():
    orch = _threads()
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        gate.wait(GUARD_S)

    c = orch.client
    c.submit(WorkflowComponent("py", hold))
    c.submit(WorkflowComponent("cmd", "sleep 60"))
    c.submit(WorkflowComponent("after", hold, dependencies=["cmd"]))
    assert started.wait(GUARD_S)
    for _ in range(600):  # the command has started once its process exists
        if _sleep_children():
            break
        threading.Event().wait(0.05)
    threading.Thread(target=orch.interrupt, kwargs={"grace": 0.5}).start()
    report = orch.wait(timeout=GUARD_S)
    gate.set()
    orch.stop()
    assert report.done
    statuses = {n: r.status for n, r in report.records.items()}
    assert statuses == {"py": "interrupted", "cmd": "interrupted", "after": "cancelled"}
    assert _sleep_children() == []


def test_a_second_interrupt_skips_the_grace_period():
    orch = _threads()
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        gate.wait(GUARD_S)

    orch.client.submit(WorkflowComponent("py", hold))
    assert started.wait(GUARD_S)
    orch.interrupt(grace=10 * GUARD_S)
    orch.interrupt()
    report = orch.wait(timeout=GUARD_S)  # only the second call can end it this soon
    gate.set()
    orch.stop()
    assert report.done and report.records["py"].status == "interrupted"


SCRIPT = """
    import signal, sys, time
    from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent

    def previous(signum, frame):  # the script's own handler: chained to after the stop
        recs = orch.records()
        print("chained", signum, recs["slow"].status, recs["later"].status, flush=True)
        sys.exit(143)

    signal.signal(signal.SIGTERM, previous)
    orch = Orchestrator(SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool"))
    c = orch.start()
    c.submit(WorkflowComponent("slow", "sleep 60"))
    c.submit(WorkflowComponent("later", "true", dependencies=["slow"]))
    print("waiting", flush=True)
    orch.wait()
"""


def test_sigterm_to_a_script_in_wait_stops_the_run_then_chains_to_its_handler(tmp_path):
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, "script.py"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "waiting"
    tree = psutil.Process(proc.pid)
    for _ in range(1200):  # until wait() has its handlers in place (SIGUSR1 is one) ...
        caught = int(_status_field(proc.pid, "SigCgt"), 16)
        # ... and the command runs
        if caught >> (signal.SIGUSR1 - 1) & 1 and any(
            p.name() == "sleep" for p in tree.children(recursive=True)
        ):
            break
        threading.Event().wait(0.05)
    children = tree.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 143
    assert out.strip() == f"chained {int(signal.SIGTERM)} interrupted cancelled"
    _, alive = psutil.wait_procs(children, timeout=GUARD_S)
    assert alive == []


def _status_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1]
    return "0"


@pytest.mark.parametrize("bad", [math.inf, 1e10, 1e300, math.nan, -1])
def test_timeouts_must_be_finite_and_bounded(bad):
    with pytest.raises(ValidationError, match="timeout"):
        WorkflowComponent("c", print, timeout=bad)
    orch = _threads()
    with pytest.raises(ValueError, match="timeout"):
        orch.wait(timeout=bad)
    orch.stop()


def test_stop_wait_true_waits_for_a_component_past_its_timeout():
    orch = _threads()
    finished = threading.Event()

    def overrun():
        threading.Event().wait(1.0)
        finished.set()

    orch.client.submit(WorkflowComponent("late", overrun, timeout=0.2))
    report = orch.wait(timeout=GUARD_S)
    assert report.records["late"].error_type == "ComponentTimeout"
    assert not finished.is_set()  # failed by its timeout while still running
    orch.stop(wait=True)
    assert finished.is_set()


def test_cpu_pinning_is_undone_after_the_component():
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to tell pinned from unpinned")
    from concurrent.futures import ThreadPoolExecutor

    cpus = sorted(os.sched_getaffinity(0))
    pool = ThreadPoolExecutor(1)  # one thread: the component's, then ours
    orch = Orchestrator(SystemConfig(name="t", cpus=cpus), pool)
    fut = orch.start().submit(
        WorkflowComponent("pinned", lambda: sorted(os.sched_getaffinity(0)), cpu_affinity=[cpus[1]])
    )
    assert fut.result(timeout=GUARD_S) == [cpus[1]]
    orch.wait(timeout=GUARD_S)
    after = pool.submit(lambda: sorted(os.sched_getaffinity(0))).result(timeout=GUARD_S)
    orch.stop()
    pool.shutdown()
    assert after == cpus


def test_a_failing_local_command_is_not_a_remote_launch_error():
    orch = _threads()
    fut = orch.client.submit(WorkflowComponent("cmd", "sh -c 'echo oops >&2; exit 3'"))
    exc = fut.exception(timeout=GUARD_S)
    orch.stop()
    assert isinstance(exc, CommandFailed) and not isinstance(exc, RemoteLaunchError)
    assert exc.returncode == 3 and "oops" in exc.stderr_tail


class Unpicklable(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()  # cannot be pickled


def raise_unpicklable():
    raise Unpicklable("the solver diverged")


def test_an_unpicklable_exception_keeps_its_type_message_and_traceback():
    orch = Orchestrator(
        SystemConfig(ncpus=1), OrchestratorConfig(name="process-pool", max_workers=1)
    )
    fut = orch.start().submit(WorkflowComponent("bad", raise_unpicklable))
    exc = fut.exception(timeout=GUARD_S)
    orch.stop()
    assert isinstance(exc, RemoteError), repr(exc)
    assert exc.type_name.endswith("Unpicklable")
    assert "the solver diverged" in str(exc) and "raise_unpicklable" in exc.traceback_text


def test_process_pool_workers_are_reachable_on_this_python():
    """Fails loudly if a Python upgrade removes what terminate_workers relies on."""
    from concurrent.futures import ProcessPoolExecutor

    from simai.orchestrator.executors.process import _worker_processes

    if sys.version_info >= (3, 14):
        assert hasattr(ProcessPoolExecutor, "terminate_workers")
        return
    with ProcessPoolExecutor(1) as pool:
        pool.submit(int).result(timeout=GUARD_S)
        procs = _worker_processes(pool)
        assert len(procs) == 1 and procs[0].is_alive()


# -- the submission channel ---------------------------------------------------------------
@pytest.fixture
def channel_server():
    from simai.orchestrator._proxy import ClientServer

    orch = _threads()
    server = ClientServer(orch.client, "127.0.0.1")
    address, key, _ = server.proxy_args()
    yield address, key
    server.close()
    orch.stop()


def _read_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack("!Q", sock.recv(8, socket.MSG_WAITALL))
    return sock.recv(n, socket.MSG_WAITALL)


def test_an_unauthenticated_huge_length_prefix_is_refused_without_reading_it(channel_server):
    from simai.orchestrator._channel import connect

    address, key = channel_server
    tracemalloc.start()
    try:
        peer = socket.create_connection(address, timeout=GUARD_S)
        _read_frame(peer)  # the server's challenge
        peer.sendall(struct.pack("!Q", 3 << 30))  # "my answer is 3 GiB long"
        assert peer.recv(1) == b""  # closed by the server, not waiting for 3 GiB
        peer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak} bytes allocated for an unauthenticated peer"
    connect(address, key).close()  # and it still serves real clients


def test_silent_peers_do_not_delay_a_real_client(channel_server):
    from simai.orchestrator._channel import connect

    address, key = channel_server
    silent = [socket.create_connection(address, timeout=GUARD_S) for _ in range(2)]
    for s in silent:
        _read_frame(s)  # each got its challenge and answers nothing
    ch = connect(address, key)  # within the handshake timeout, or this raises
    ch.close()
    for s in silent:  # the silent ones are still open: the server was waiting for them too
        s.setblocking(False)
        with pytest.raises(BlockingIOError):  # no data and not closed
            s.recv(1, socket.MSG_PEEK)
        s.close()


def test_a_peer_without_the_key_is_refused(channel_server):
    from simai.orchestrator._channel import AuthenticationError, connect

    address, _ = channel_server
    with pytest.raises((AuthenticationError, EOFError, ConnectionError)):
        connect(address, b"x" * 32)
