"""How a run ends: stop signals, child process groups, and parent-death guarantees.

Linux sends a child's ``PR_SET_PDEATHSIG`` signal when the *thread* that forked it
exits, so every child that must not outlive us is forked either by a process's main
thread (pool workers, mpiexec from a worker) or by a thread that lives as long as the
work it started (a pool thread running a command).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

__all__ = [
    "DEFAULT_GRACE_S",
    "MAX_TIMEOUT_S",
    "STOP_SIGNALS",
    "SignalScope",
    "check_timeout",
    "popen",
    "terminate_groups",
]

# Scheduler-driven stops (PBS, Slurm) send SIGTERM, then SIGKILL after a delay that is
# 30-60 s on most sites: the default grace leaves room for cleanup after it.
DEFAULT_GRACE_S = 10.0
# Longer than any batch allocation; anything beyond is a typo (1e10, inf) that would
# break the timer thread (threading.TIMEOUT_MAX) and never fire anyway.
MAX_TIMEOUT_S = 30 * 24 * 3600.0

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")
    if hasattr(signal, name)
)


def check_timeout(value: float | None, field: str) -> float | None:
    """A timeout in seconds: None, or a finite number in (0, MAX_TIMEOUT_S]."""
    if value is None:
        return None
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise ValueError(
            f"{field}={value!r}: give a finite number of seconds in (0, {MAX_TIMEOUT_S:g}] "
            "(30 days), or None for no timeout"
        )
    return float(value)


class SignalScope:
    """Route the stop signals to ``on_signal(signum)`` while active, then restore the
    previous handlers. Only on the main thread (Python delivers signals there); elsewhere
    it does nothing and the caller uses ``interrupt()`` instead.

    `chain` hands the first signal received to the handler that was there before, once
    the caller has finished stopping: a Python handler is called (SIGINT's default
    raises KeyboardInterrupt), the default action is taken (SIGTERM ends the process
    with status 143), an ignored signal stays ignored.
    """

    def __init__(self, on_signal: Callable[[int], None]):
        self._on_signal = on_signal
        self._previous: dict[int, object] = {}
        self.received: list[int] = []

    def __enter__(self) -> SignalScope:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) == signal.SIG_IGN:
                    continue  # ignored on purpose (nohup ignores SIGHUP): leave it so
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (OSError, ValueError):  # not settable here (embedded interpreter)
                    pass
        return self

    def reassert(self) -> None:
        """Install the handlers again: an engine started meanwhile (Ray) may have put its
        own in place at the C level."""
        for sig in self._previous:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        self._on_signal(signum)

    def __exit__(self, *exc) -> None:
        for sig, prev in self._previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, prev)  # type: ignore[arg-type]

    def chain(self) -> None:
        if not self.received or self.received[0] not in self._previous:
            return
        sig = self.received[0]
        prev = self._previous[sig]
        if callable(prev):
            prev(sig, None)
        elif prev == signal.SIG_DFL:
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)


# -- parent death ------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1
_prctl = None
if sys.platform.startswith("linux"):
    try:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) exits."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


class _ChildSetup:
    """Runs in the forked child, before exec."""

    def __init__(self, cpus):
        self.cpus = cpus

    def __call__(self) -> None:
        # SIGTERM, not SIGKILL: mpiexec (Hydra) then stops its proxies and ranks itself.
        set_parent_death_signal(signal.SIGTERM)
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)


# -- process groups we started -----------------------------------------------------------
_groups: dict[int, subprocess.Popen] = {}
_groups_lock = threading.Lock()


def popen(cmd: list[str], cpus=None, **kwargs) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (pinned to ``cpus``), tracked until `reap`,
    and sent SIGTERM by the kernel if the thread that started it dies."""
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_ChildSetup(cpus), **kwargs)
    with _groups_lock:
        _groups[proc.pid] = proc
    return proc


def reap(proc: subprocess.Popen) -> None:
    """Forget a group that ended (after ``wait()``), killing what it left behind."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with _groups_lock:
        _groups.pop(proc.pid, None)


def kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds, then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    reap(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def terminate_groups(sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to every process group this process started and still tracks."""
    with _groups_lock:
        pids = list(_groups)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    return len(pids)


def groups_alive() -> bool:
    with _groups_lock:
        procs = list(_groups.values())
    return any(p.poll() is None for p in procs)


def end_groups(grace: float) -> None:
    """SIGTERM every tracked group, SIGKILL what is left after ``grace`` seconds."""
    if not terminate_groups(signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while groups_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    terminate_groups(signal.SIGKILL)


# -- a supervisor for engines whose helpers outlive their parent --------------------------
_reaper: subprocess.Popen | None = None
_reaper_lock = threading.Lock()


def start_reaper() -> None:
    """Start (once per process) `_reaper`, which ends this process's whole tree when this
    process dies, even by SIGKILL."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.poll() is None:
            return
        _reaper = subprocess.Popen(
            [sys.executable, "-m", "simai.orchestrator._reaper", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not in our process group: it must outlive us briefly
        )


# -- worker processes of our pools -------------------------------------------------------
_WORKER_GRACE_S = 2.0
_task_running = False


class WorkerStopped(BaseException):
    """Raised in a pool worker's running task on SIGTERM, so its cleanup (``finally``,
    temporary directories) runs; a BaseException so that the task does not catch it."""


@contextlib.contextmanager
def worker_task():
    """Marks a task running in this pool worker (SIGTERM then unwinds it)."""
    global _task_running
    _task_running = True
    try:
        yield
    finally:
        _task_running = False


def _worker_stop(signum: int, frame) -> None:
    end_groups(_WORKER_GRACE_S)
    if _task_running:
        raise WorkerStopped(f"the worker received {signal.Signals(signum).name}")
    os._exit(128 + signum)  # idle: nothing to clean up


def init_worker(owner: int) -> None:
    """Initializer of our pool workers: end with the ``owner`` process, and end the
    process groups they started on SIGTERM.

    A forkserver's children keep the forkserver alive (they hold its "alive" pipe), so
    neither notices when the owner dies: each worker watches the owner itself. Ctrl-C
    reaches the whole terminal process group; the orchestrator decides what stops, so
    workers ignore SIGINT.
    """
    threading.Thread(
        target=_exit_with, args=(owner,), name="simai-owner-watch", daemon=True
    ).start()
    signal.signal(signal.SIGTERM, _worker_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_with(owner: int) -> None:
    import select

    try:
        fd = os.pidfd_open(owner)
    except (AttributeError, OSError):  # before Linux 5.3, or the owner is already gone
        fd = None
        while _pid_alive(owner):
            time.sleep(0.5)
    if fd is not None:
        select.select([fd], [], [])  # readable once the owner has exited
    # As on SIGTERM from the orchestrator: the running task unwinds and cleans up; then
    # the worker ends, whether or not anything is left to receive its result.
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_WORKER_GRACE_S + 3.0)
    os._exit(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
