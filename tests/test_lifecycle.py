"""How a `simai run` ends when its batch scheduler ends it: SIGTERM, Ctrl-C (once and
twice), SIGKILL and --timeout, with real servers, pools, mpiexec and engines.

Each test waits until every component is really running (each writes a marker file),
records the run's whole process tree with psutil, signals the `simai` process, and
checks that nothing of the tree is left and no staging/temporary directory remains.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil", reason="the lifecycle tests read process trees with psutil")

_EXE = Path(sys.executable).with_name("simai")
SIMAI = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "simai.bench.cli"]

pytestmark = pytest.mark.lifecycle

TASKS = """
    import os, time
    from pathlib import Path

    def hold(marker, s=60.0):
        Path(marker).touch()
        time.sleep(s)
        return s

    def once(marker):
        Path(marker).touch()
        return 7
"""


@pytest.fixture
def tmp_path(tmp_path):
    """The test's directory, with ``tmp`` the run's TMPDIR: a short path, since Ray puts
    socket paths there (at most 107 bytes)."""
    short = Path(tempfile.mkdtemp(prefix="simai-lc-"))
    (tmp_path / "tmp").symlink_to(short)
    yield tmp_path
    shutil.rmtree(short, ignore_errors=True)


GRACE = "3"  # seconds; short, but long enough for mpiexec and engines to end on SIGTERM
HANG_GUARD_S = 60  # a run that needs this long to stop has hung


def _start(tmp_path: Path, workflow: str, *args: str, grace: str = GRACE) -> subprocess.Popen:
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(workflow))
    (tmp_path / "stage").mkdir(mode=0o700)
    env = {
        **os.environ,
        "COLUMNS": "200",
        "TMPDIR": str(
            (tmp_path / "tmp").resolve()
        ),  # every temporary directory of the run lands here
        "SIMAI_DATASTORE_DIR": str(tmp_path / "stage"),  # and its staging (not /dev/shm)
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [*SIMAI, "run", "wf.yaml", "--out", "run", "--grace-period", grace, *args]
    # Files, not pipes: a leftover child holding a pipe would hang communicate().
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=err)


def _output(tmp_path: Path) -> tuple[str, str]:
    return (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()


def _wait_for(predicate, what: str, proc: subprocess.Popen, tmp_path: Path):
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if proc.poll() is not None:
            out, err = _output(tmp_path)
            pytest.fail(f"simai exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            tree = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait()
            for p in tree:
                if _alive(p):
                    p.kill()
            out, err = _output(tmp_path)
            pytest.fail(f"gave up waiting for {what}:\n{out}\n{err}")
        time.sleep(0.1)


def _running(tmp_path: Path, proc: subprocess.Popen, markers: list[str]) -> list:
    """Wait until every marker exists; return the run's process tree at that moment."""
    _wait_for(
        lambda: all((tmp_path / m).exists() for m in markers), f"markers {markers}", proc, tmp_path
    )
    return psutil.Process(proc.pid).children(recursive=True)


def _alive(p) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_nothing_left(tree: list, tmp_path: Path) -> None:
    deadline = time.monotonic() + 20  # parent-death chains take a moment (forkserver, hydra)
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [f"{p.pid} {p.name()}" for p in tree if _alive(p)]
    for p in tree:
        if _alive(p):
            p.kill()  # do not leak into the next test, whatever the verdict
    assert not left, f"still running after the run ended: {left}"
    # Ray keeps its session logs in TMPDIR/ray by design; nothing else may stay.
    left = [p.name for p in (tmp_path / "tmp").iterdir() if p.name != "ray"]
    assert left == [], f"temporary directories left behind: {left}"
    assert list((tmp_path / "stage").iterdir()) == [], "staging left behind"


def _result(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / "result.json").read_text())


def _statuses(result: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in result["components"]}


def _stop(
    proc: subprocess.Popen, tmp_path: Path, *signals: signal.Signals, gap: float = 0.3
) -> tuple[str, str]:
    for i, sig in enumerate(signals):
        if i:
            time.sleep(gap)  # the second signal arrives while the first stop is under way
        proc.send_signal(sig)
    try:
        proc.wait(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        out, err = _output(tmp_path)
        pytest.fail(f"simai did not stop after {signals}:\n{out}\n{err}")
    return _output(tmp_path)


REDIS_POOL_MPI = """
    server: {type: redis}
    orchestrator: {name: process-pool, max_workers: 3}
    system: {ncpus: 8}
    components:
      - {name: sim, function: tasks.py:hold, args: {marker: started-sim}}
      - {name: cmd, command: "sh -c 'touch started-cmd; exec sleep 60'"}
      - name: solver
        type: remote
        ppn: 2
        command: "sh -c 'touch started-mpi-$PMI_RANK; exec sleep 60'"
      - {name: post, function: tasks.py:hold, args: {marker: started-post}, dependencies: [sim]}
"""
MARKERS = ["started-sim", "started-cmd", "started-mpi-0", "started-mpi-1"]


@pytest.mark.redis
@pytest.mark.mpi
def test_sigterm_stops_redis_process_pool_and_mpiexec_and_reports_interrupted(tmp_path):
    proc = _start(tmp_path, REDIS_POOL_MPI)
    tree = _running(tmp_path, proc, MARKERS)
    names = {p.name() for p in tree if _alive(p)}
    assert {"redis-server", "mpiexec", "sleep"} <= names, names
    _out, err = _stop(proc, tmp_path, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    result = _result(tmp_path)
    assert result["status"] == "interrupted" and result["interrupted"] == "SIGTERM"
    assert _statuses(result) == {
        "sim": "interrupted",
        "cmd": "interrupted",
        "solver": "interrupted",
        "post": "cancelled",
    }
    assert (tmp_path / "run" / "trace.json").exists()
    _assert_nothing_left(tree, tmp_path)


@pytest.mark.redis
@pytest.mark.mpi
def test_sigkill_of_simai_leaves_nothing_running(tmp_path):
    proc = _start(tmp_path, REDIS_POOL_MPI)
    tree = _running(tmp_path, proc, MARKERS)
    proc.kill()
    proc.wait(timeout=HANG_GUARD_S)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [f"{p.pid} {p.name()}" for p in tree if _alive(p)]
    for p in tree:
        if _alive(p):
            p.kill()
    assert not left, f"still running after SIGKILL of simai: {left}"
    # After SIGKILL nobody can remove staging; only "nothing left running" holds.


THREADS_FS = """
    server: {type: filesystem}
    orchestrator: {name: thread-pool}
    system: {ncpus: 4}
    components:
      - {name: py, function: tasks.py:hold, args: {marker: started-py}}
      - {name: cmd, command: "sh -c 'touch started-cmd; exec sleep 60'"}
      - {name: after, function: tasks.py:hold, args: {marker: never}, dependencies: [cmd]}
"""


def test_ctrl_c_once_stops_a_thread_pool_run_and_removes_staging(tmp_path):
    proc = _start(tmp_path, THREADS_FS)
    tree = _running(tmp_path, proc, ["started-py", "started-cmd"])
    _out, err = _stop(proc, tmp_path, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and "Aborted" not in err, err
    result = _result(tmp_path)
    assert result["status"] == "interrupted" and result["interrupted"] == "SIGINT"
    assert _statuses(result) == {"py": "interrupted", "cmd": "interrupted", "after": "cancelled"}
    _assert_nothing_left(tree, tmp_path)


def test_ctrl_c_twice_skips_the_grace_period_but_still_cleans_up(tmp_path):
    # A grace period far beyond the hang guard: only the second signal ends the run in time.
    proc = _start(tmp_path, THREADS_FS, grace="600")
    tree = _running(tmp_path, proc, ["started-py", "started-cmd"])
    _out, err = _stop(proc, tmp_path, signal.SIGINT, signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and "terminate called" not in err, err
    assert _result(tmp_path)["status"] == "interrupted"
    _assert_nothing_left(tree, tmp_path)


def test_timeout_starts_the_same_stop(tmp_path):
    proc = _start(tmp_path, THREADS_FS, "--timeout", "3")
    tree = _running(tmp_path, proc, ["started-py", "started-cmd"])
    proc.wait(timeout=HANG_GUARD_S)
    _out, err = _output(tmp_path)
    assert proc.returncode == 1, err
    result = _result(tmp_path)
    assert result["status"] == "interrupted" and result["interrupted"] == "timeout"
    assert "timeout" in result["components"][0]["error"]
    _assert_nothing_left(tree, tmp_path)


ENGINE = """
    server: {type: node-local}
    orchestrator: {name: ENGINE, max_workers: 2}
    system: {ncpus: 4}
    components:
      - {name: py, function: tasks.py:hold, args: {marker: started-py}}
      - {name: cmd, command: "sh -c 'touch started-cmd; exec sleep 60'"}
      - {name: after, function: tasks.py:hold, args: {marker: never}, dependencies: [py]}
"""


@pytest.mark.parametrize(
    "engine",
    [pytest.param("dask", marks=pytest.mark.dask), pytest.param("ray", marks=pytest.mark.ray)],
)
def test_sigterm_stops_an_engine_we_started(tmp_path, engine):
    proc = _start(tmp_path, ENGINE.replace("ENGINE", engine))
    tree = _running(tmp_path, proc, ["started-py", "started-cmd"])
    _out, err = _stop(proc, tmp_path, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, err
    result = _result(tmp_path)
    assert result["status"] == "interrupted"
    assert _statuses(result)["after"] == "cancelled"
    _assert_nothing_left(tree, tmp_path)


RESUMABLE = """
    orchestrator: {name: thread-pool}
    system: {ncpus: 2}
    components:
      - {name: first, function: tasks.py:once, args: {marker: ran-first}}
      - {name: slow, function: tasks.py:hold, args: {marker: started-slow}, dependencies: [first]}
"""


def test_resume_reruns_only_what_did_not_succeed(tmp_path):
    proc = _start(tmp_path, RESUMABLE)
    _running(tmp_path, proc, ["started-slow"])
    _stop(proc, tmp_path, signal.SIGTERM)
    assert _statuses(_result(tmp_path)) == {"first": "succeeded", "slow": "interrupted"}
    (tmp_path / "ran-first").unlink()
    (tmp_path / "started-slow").unlink()
    again = subprocess.run(
        [
            *SIMAI,
            "run",
            "wf.yaml",
            "--resume",
            "run",
            "--out",
            "run2",
            "--set",
            "components.1.args.s=0.1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    result = json.loads((tmp_path / "run2" / "result.json").read_text())
    assert _statuses(result) == {"first": "succeeded", "slow": "succeeded"}
    assert result["components"][0]["value"] == 7  # the recorded value: not run again
    assert not (tmp_path / "ran-first").exists() and (tmp_path / "started-slow").exists()


@pytest.mark.parametrize(
    "engine",
    [pytest.param("dask", marks=pytest.mark.dask), pytest.param("ray", marks=pytest.mark.ray)],
)
def test_sigkill_of_simai_leaves_no_engine_process(tmp_path, engine):
    proc = _start(tmp_path, ENGINE.replace("ENGINE", engine))
    tree = _running(tmp_path, proc, ["started-py", "started-cmd"])
    proc.kill()
    proc.wait(timeout=HANG_GUARD_S)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [f"{p.pid} {p.name()}" for p in tree if _alive(p)]
    for p in tree:
        if _alive(p):
            p.kill()
    assert not left, f"still running after SIGKILL of simai: {left}"


def test_the_cli_states_the_orchestrators_limits():
    from simai.bench import cli
    from simai.orchestrator import _lifecycle

    assert (cli.DEFAULT_GRACE_S, cli.MAX_TIMEOUT_S) == (
        _lifecycle.DEFAULT_GRACE_S,
        _lifecycle.MAX_TIMEOUT_S,
    )
