"""A tiny supervisor: when its owner process dies, end everything the owner had started.

For engines whose helpers do not die with their parent (Ray's dashboard and runtime-env
agents survive a SIGKILL of the driver). It keeps a snapshot of the owner's process tree,
refreshed twice a second, and on the owner's death sends SIGTERM, then SIGKILL, to every
process of the last snapshot that still runs (psutil checks start times, so a reused pid
is never hit). Run as ``python -m simai.orchestrator._reaper OWNER_PID``.
"""

from __future__ import annotations

import os
import select
import sys

_REFRESH_S = 0.5
_GRACE_S = 2.0


def main(owner: int) -> int:
    import psutil

    try:
        parent = psutil.Process(owner)
        fd = os.pidfd_open(owner)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return 0
    me = os.getpid()
    tree: list = []
    while True:
        try:
            tree = [p for p in parent.children(recursive=True) if p.pid != me]
        except psutil.NoSuchProcess:
            break
        if select.select([fd], [], [], _REFRESH_S)[0]:
            break
    # The snapshot may be up to one refresh old: add every live descendant of its members
    # (helpers a raylet started since), until nothing new turns up.
    known = {p.pid: p for p in tree}
    frontier = list(tree)
    while frontier:
        found = []
        for p in frontier:
            try:
                found.extend(c for c in p.children(recursive=True) if c.pid not in known)
            except psutil.NoSuchProcess:
                pass
        for c in found:
            known.setdefault(c.pid, c)
        frontier = [c for c in found if c.pid != me]
    tree = [p for p in known.values() if p.pid != me]
    for p in tree:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=_GRACE_S)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
