"""The nodes of a batch allocation: ``PBS_NODEFILE``, ``SLURM_NODELIST``, a hostfile or a list.

`SystemConfig` describes one node; the allocation says which nodes there are. Nothing here
needs a scheduler: Slurm's bracket ranges (``nid[001-004,010],login1``) are expanded in
Python, without ``scontrol``, so launch commands can be planned on a laptop.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Allocation", "expand_nodelist", "read_hostfile", "virtual_cluster"]

# One bracket group of a Slurm host list: "nid[001-003,7]" -> prefix, ranges, rest.
# A bound on what a host list may expand to: a typo such as nid[0-99999999] must fail
# clearly rather than fill memory.
MAX_NODES = 100_000
_BRACKET = re.compile(r"^([^\[\],]*)\[([^\[\]]+)\](.*)$")


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm host list (``a[01-03,7],b-[1-2]-ib``, several groups per name too).

    Zero padding follows the lower bound of each range, as Slurm does. Raises ValueError
    naming the part that is not a host list.
    """
    hosts: list[str] = []
    for part in _split_top_level(nodelist.strip()):
        hosts.extend(_expand_one(part, nodelist))
        if len(hosts) > MAX_NODES:
            raise ValueError(f"SLURM_NODELIST {nodelist!r} names more than {MAX_NODES} nodes")
    return list(dict.fromkeys(hosts))


def _split_top_level(text: str) -> list[str]:
    parts, buf, depth = [], [], 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"SLURM_NODELIST {text!r}: unbalanced ']'")
        if ch == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if depth:
        raise ValueError(f"SLURM_NODELIST {text!r}: unbalanced '['")
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def _expand_one(part: str, whole: str) -> list[str]:
    m = _BRACKET.match(part)
    if m is None:
        if "[" in part or "]" in part:
            raise ValueError(f"SLURM_NODELIST {whole!r}: cannot read {part!r}")
        return [part]
    prefix, ranges, rest = m.groups()
    tails = _expand_one(rest, whole) if rest else [""]
    out = []
    for r in ranges.split(","):
        lo, _, hi = r.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"SLURM_NODELIST {whole!r}: {r!r} is not a number or a range")
        if hi and int(hi) < int(lo):
            raise ValueError(f"SLURM_NODELIST {whole!r}: range {r!r} runs backwards")
        if int(hi or lo) - int(lo) >= MAX_NODES:
            raise ValueError(
                f"SLURM_NODELIST {whole!r}: range {r!r} names more than {MAX_NODES} nodes"
            )
        for i in range(int(lo), int(hi or lo) + 1):
            out.extend(f"{prefix}{str(i).zfill(len(lo))}{t}" for t in tails)
            if len(out) > MAX_NODES:
                raise ValueError(f"SLURM_NODELIST {whole!r} names more than {MAX_NODES} nodes")
    return out


def read_hostfile(path: str | os.PathLike) -> list[str]:
    """Host names of a node file, unique, in order.

    Accepts a PBS node file (one line per rank: repeated names collapse), an MPICH
    ``host:slots`` file, an Open MPI ``host slots=N`` file, blank lines and ``#`` comments.
    """
    hosts = []
    # Opened without blocking and checked: a FIFO or a device named as the node file must
    # fail at once, not hang the run.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"node file {os.fspath(path)!r} is not a regular file")
    with os.fdopen(fd, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            host = line.split()[0].split(":", 1)[0]
            hosts.append(host)
    return list(dict.fromkeys(hosts))


@dataclass(frozen=True)
class Allocation:
    """The nodes simai may place what it launches on, and where that list came from."""

    nodes: tuple[str, ...]
    source: str = "explicit"

    def __post_init__(self) -> None:
        if any(
            not isinstance(n, str) or not n.strip() or any(c.isspace() for c in n)
            for n in self.nodes
        ):
            raise ValueError(f"allocation nodes must be host names without spaces: {self.nodes!r}")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"allocation lists a node twice: {list(self.nodes)!r}")

    def __len__(self) -> int:
        return len(self.nodes)

    def __bool__(self) -> bool:
        return bool(self.nodes)

    @classmethod
    def from_list(cls, nodes: Iterable[str], source: str = "explicit") -> Allocation:
        return cls(tuple(dict.fromkeys(nodes)), source)

    @classmethod
    def from_hostfile(cls, path: str | os.PathLike, source: str | None = None) -> Allocation:
        return cls(tuple(read_hostfile(path)), source or f"hostfile {os.fspath(path)}")

    @classmethod
    def from_nodelist(cls, nodelist: str, source: str = "SLURM_NODELIST") -> Allocation:
        return cls(tuple(expand_nodelist(nodelist)), source)

    @classmethod
    def detect(cls, env: Mapping[str, str] | None = None) -> Allocation:
        """The current job's nodes: ``SIMAI_ORCHESTRATOR_HOSTFILE``, then PBS, then Slurm.

        Outside a job the allocation is empty: everything runs on this node.
        """
        env = os.environ if env is None else env
        for var in ("SIMAI_ORCHESTRATOR_HOSTFILE", "PBS_NODEFILE"):
            path = env.get(var)
            if path:
                try:
                    return cls.from_hostfile(path, source=f"{var}={path}")
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{var}={path!r} is not a readable node file: {exc}") from None
        for var in ("SLURM_JOB_NODELIST", "SLURM_NODELIST"):
            if env.get(var):
                return cls.from_nodelist(env[var], source=var)
        return cls((), "none")


VIRTUAL_FIRST = 11  # 127.0.0.11, .12, ...: loopback addresses, all routed to lo


def virtual_cluster(n: int, directory: str | os.PathLike) -> dict[str, str]:
    """A rehearsal cluster of ``n`` loopback "nodes" (127.0.0.11 ...) on this machine.

    Writes ``directory/nodefile`` (the directory is created 0700 if missing, and must be
    ours and not a link) and returns the environment a job script would see:
    ``PBS_NODEFILE``, the ``mpich`` launcher, and Hydra's ``fork`` launcher, which starts
    each "node"'s ranks here while honouring ``-hosts`` (ranks see their node in
    ``SIMAI_NODE``). Services bind to their node's address; nothing leaves 127.0.0.0/8.
    """
    if not 1 <= n <= 200:
        raise ValueError(f"a virtual cluster has 1 to 200 nodes, not {n}")
    directory = os.fspath(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ValueError(f"{directory!r} is not a directory of ours (or is a link)")
    nodes = [f"127.0.0.{VIRTUAL_FIRST + i}" for i in range(n)]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".nodefile.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(nodes) + "\n")
    path = os.path.join(directory, "nodefile")
    os.replace(tmp, path)
    return {
        "PBS_NODEFILE": os.path.abspath(path),
        "SIMAI_ORCHESTRATOR_LAUNCHER": "mpich",
        "HYDRA_LAUNCHER": "fork",
    }
