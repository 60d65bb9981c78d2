"""What runs inside the executor's worker: one attempt of one component."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simai.orchestrator import _otel

__all__ = ["TaskContext", "TaskSpec", "current_task", "run_task"]

_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "simai_orchestrator_task", default=None
)
_env_lock = threading.Lock()
# The affinity each worker thread has now, so a thread that keeps getting the same CPU
# slot (the common case) makes no system call per component.
_affinity = threading.local()
# os.getpid() is a system call (glibc stopped caching it); a component asks twice, so
# the pid is kept here and refreshed in forked children.
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresh_pid)


class TaskContext(NamedTuple):
    """What a running component was given: its name, attempt, pinned CPUs, GPUs and env."""

    name: str
    attempt: int
    cpus: tuple[int, ...] | None
    gpus: tuple[str, ...]
    env: dict[str, str]
    executor: str


def current_task() -> TaskContext | None:
    """The component running in this thread/process (None outside a component)."""
    return _current.get()


@dataclass(slots=True)
class TaskSpec:
    name: str
    executable: Any
    kind: str
    args: dict
    env: dict[str, str]
    pin: tuple[int, ...] | None
    gpus: tuple[str, ...]
    timeout: float | None
    executor: str
    scheduler_pid: int
    attempt: int = 1
    nprocs: int = 1
    ppn: int = 1
    hosts: tuple[str, ...] = ()
    trace_carrier: dict = field(default_factory=dict)
    submitted: float = 0.0
    ready: float = 0.0


def run_task(spec: TaskSpec) -> tuple:
    """Run one attempt; return ("simai-outcome", result, start, end, pid)."""
    start = time.time()
    token = _current.set(
        TaskContext(spec.name, spec.attempt, spec.pin, spec.gpus, spec.env, spec.executor)
    )
    try:
        tracer = _otel.tracer()
        result = _execute(spec) if tracer is None else _traced(tracer, spec)
    finally:
        _current.reset(token)
    return ("simai-outcome", result, start, time.time(), _pid)


def _traced(tracer, spec: TaskSpec) -> Any:
    parent = None
    if spec.trace_carrier:
        from opentelemetry import propagate

        parent = propagate.extract(spec.trace_carrier)
    attrs = {
        "simai.component": spec.name,
        "simai.executor": spec.executor,
        "simai.attempt": spec.attempt,
        "simai.type": spec.kind,
    }
    with tracer.start_as_current_span(
        "orchestrator.component",
        context=parent,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=True,
    ) as span:
        # Scheduling history, stamped with the scheduler's times (same clock on one node).
        if spec.submitted:
            span.add_event("submitted", timestamp=int(spec.submitted * 1e9))
        if spec.ready:
            span.add_event("ready", timestamp=int(spec.ready * 1e9))
        span.add_event("started")
        try:
            result = _execute(spec)
        except BaseException as exc:
            span.set_attribute("simai.status", "failed")
            span.record_exception(exc)
            raise
        span.set_attribute("simai.status", "succeeded")
        span.add_event("done")
    return result


def _execute(spec: TaskSpec) -> Any:
    if spec.kind == "remote":
        from simai.orchestrator.mpi import run_remote

        return run_remote(
            spec.name,
            spec.executable,
            spec.args,
            spec.nprocs,
            spec.ppn,
            spec.env,
            spec.hosts,
            spec.pin,
            spec.timeout,
        )
    if _pid == spec.scheduler_pid:
        return _run_in_thread(spec)
    return _run_in_process(spec)


def _run_in_thread(spec: TaskSpec) -> Any:
    # The environment is shared by every thread of the process, so a thread component's
    # env_vars/GPU variables are offered through current_task().env and not written to
    # os.environ. CPU affinity is per thread on Linux, so pinning is applied and undone.
    if callable(spec.executable):
        return _pinned(spec.pin, spec.executable, spec.args)
    return _run_command(spec)


def _run_in_process(spec: TaskSpec) -> Any:
    # A worker process runs one component at a time: set its env for the run, then restore.
    with _env_lock:
        saved = {k: os.environ.get(k) for k in spec.env}
        os.environ.update(spec.env)
    try:
        if callable(spec.executable):
            return _pinned(spec.pin, spec.executable, spec.args)
        return _run_command(spec)
    finally:
        with _env_lock:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _pinned(pin, fn, args):
    if not hasattr(os, "sched_setaffinity"):
        return fn(**args)
    current = getattr(_affinity, "cpus", None)
    if current is None:
        current = _affinity.cpus = _affinity.unpinned = frozenset(os.sched_getaffinity(0))
    want = frozenset(pin) if pin else _affinity.unpinned
    if want != current:
        os.sched_setaffinity(0, want)
        _affinity.cpus = want
    return fn(**args)


def _run_command(spec: TaskSpec) -> str:
    """A local command string: run it (pinned, with the component's env), return stdout."""
    import shlex
    import subprocess

    from simai.orchestrator.errors import ComponentTimeout, RemoteLaunchError

    env = {**os.environ, **spec.env}
    pin = spec.pin

    def preexec():  # runs in the child only
        if pin:
            os.sched_setaffinity(0, pin)

    try:
        out = subprocess.run(
            shlex.split(spec.executable),
            capture_output=True,
            env=env,
            timeout=spec.timeout,
            preexec_fn=preexec if pin else None,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ComponentTimeout(
            f"component {spec.name!r} exceeded its timeout of {spec.timeout}s", spec.name
        ) from None
    if out.returncode != 0:
        tail = out.stderr[-4000:].decode(errors="replace")
        raise RemoteLaunchError(
            f"component {spec.name!r}: command exited with code {out.returncode}; stderr tail:\n{tail}",
            spec.name,
            out.returncode,
            tail,
        )
    return out.stdout.decode(errors="replace")
