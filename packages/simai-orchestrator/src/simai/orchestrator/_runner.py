"""What runs inside the executor's worker: one attempt of one component."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simai.orchestrator import _otel

__all__ = ["Outcome", "TaskContext", "TaskSpec", "current_task", "run_task"]

_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "simai_orchestrator_task", default=None
)
_env_lock = threading.Lock()
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


@dataclass(slots=True, kw_only=True)
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
    launcher: str | None = None
    launcher_args: tuple[str, ...] = ()
    # A local component's own request (nodes, cpu_affinity, gpu_affinity) when the engine
    # places tasks itself (`PlacesTasks`): the engine's adapter applies it, not the driver.
    placement: dict = field(default_factory=dict)
    trace_carrier: dict = field(default_factory=dict)
    telemetry_env: dict = field(default_factory=dict)
    submitted: float = 0.0
    ready: float = 0.0


@dataclass(slots=True, frozen=True)
class Outcome:
    """A successful attempt: its value and when it ran, measured where it ran."""

    value: Any
    started: float
    ended: float
    pid: int


def run_task(spec: TaskSpec) -> Outcome:
    """Run one attempt of a component."""
    start = time.time()
    token = _current.set(
        TaskContext(spec.name, spec.attempt, spec.pin, spec.gpus, spec.env, spec.executor)
    )
    try:
        tracer = _otel.tracer()
        if tracer is None and spec.telemetry_env and _pid != spec.scheduler_pid:
            tracer = _otel.join(spec.telemetry_env)
        if tracer is None:
            result = _execute(spec)
        else:
            try:
                result = _traced(tracer, spec)
            finally:
                if _pid != spec.scheduler_pid:
                    # The result may be the last thing this worker sends before it is
                    # stopped: its spans must be exported first, on every executor.
                    _otel.flush()
    finally:
        _current.reset(token)
    return Outcome(result, start, time.time(), _pid)


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
            launcher=spec.launcher,
            launcher_args=spec.launcher_args,
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
    if not pin or not hasattr(os, "sched_setaffinity"):
        return fn(**args)
    # Per thread on Linux: pin this worker thread for the call, then give it back the
    # CPUs it had, so the next component on this thread is not confined to ours.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, pin)
    try:
        return fn(**args)
    finally:
        os.sched_setaffinity(0, before)


def _run_command(spec: TaskSpec) -> str:
    """A local command string: run it (pinned, with the component's env), return stdout.

    It runs in its own process group, ended with the component (timeout, interrupt) and
    with the process or thread that started it.
    """
    import shlex
    import subprocess

    from simai.orchestrator import _lifecycle
    from simai.orchestrator.errors import CommandFailed, ComponentTimeout

    proc = _lifecycle.popen(
        shlex.split(spec.executable),
        cpus=spec.pin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **spec.env},
    )
    try:
        out, err = proc.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        _lifecycle.kill_group(proc)
        raise ComponentTimeout(
            f"component {spec.name!r} exceeded its timeout of {spec.timeout}s", spec.name
        ) from None
    except BaseException:
        _lifecycle.kill_group(proc)
        raise
    _lifecycle.reap(proc)
    if proc.returncode != 0:
        tail = err[-4000:].decode(errors="replace")
        raise CommandFailed(
            f"component {spec.name!r}: command exited with code {proc.returncode}; "
            f"stderr tail:\n{tail}",
            spec.name,
            proc.returncode,
            tail,
        )
    return out.decode(errors="replace")
