"""Nodes of an allocation: which one this process is on, and starting processes there.

Shared by the servers that start something on every node (redis-server, node-local
staging directories); imports nothing optional.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["is_local", "spawner", "this_node"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # If the Python process that started redis dies (even by SIGKILL), the kernel
    # sends SIGTERM to redis: no orphaned servers.
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Spawner:
    """Starts server processes from one daemon thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
    process: a server started from a short-lived worker thread (``simai run``
    starts servers from one) would be killed when that thread ends, or -- without
    the signal -- outlive a SIGKILLed Python. Forking from this one thread makes
    the signal mean "the Python process died", whichever thread asked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue | None = None
        self._pid = 0

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        while True:
            args, kwargs, done = jobs.get()
            try:
                done.append(subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs))
            except BaseException as exc:  # handed to the caller
                done.append(exc)
            done.event.set()

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen:
        with self._lock:
            if self._jobs is None or self._pid != os.getpid():  # none yet, or a forked child
                self._jobs, self._pid = queue.SimpleQueue(), os.getpid()
                threading.Thread(
                    target=self._serve, args=(self._jobs,), name="simai-server-spawner", daemon=True
                ).start()
            done = _Done()
            self._jobs.put((args, kwargs, done))
        done.event.wait()
        if isinstance(done[0], BaseException):
            raise done[0]
        return done[0]


class _Done(list):
    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()


spawner = _Spawner()


def is_local(host: str) -> bool:
    """An address this machine answers on (the whole 127/8 is loopback: a virtual cluster)."""
    return (
        host.startswith("127.")
        or host in ("localhost", "::1", "0.0.0.0", "::", "*")
        or host in (socket.gethostname(), socket.getfqdn())
    )


def this_node(nodes: Sequence[str]) -> str:
    """The node of ``nodes`` this process runs on: ``SIMAI_NODE`` (set on every rank simai
    places; on a virtual cluster only it tells the nodes apart), else this host's name,
    else the one node that is a loopback address."""
    node = os.environ.get("SIMAI_NODE")
    if node:
        if node in nodes:
            return node
        raise ValueError(f"SIMAI_NODE={node!r} is not one of the store's nodes {list(nodes)}")
    names = {socket.gethostname(), socket.getfqdn(), socket.gethostname().split(".")[0]}
    mine = [n for n in nodes if n in names] or [n for n in nodes if n.startswith("127.")]
    if len(mine) == 1:
        return mine[0]
    raise ValueError(
        f"cannot tell which of the nodes {list(nodes)} this process is on "
        f"(host {socket.gethostname()!r}): set SIMAI_NODE to its node"
    )
