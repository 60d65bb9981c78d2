"""Launchers: how a ``type="remote"`` component's ranks are started on their nodes.

One small protocol (`simai.orchestrator.protocols.Launcher`) turns a `LaunchRequest` into
an argv. Built-ins: ``mpich`` (Hydra), ``openmpi``, ``pals`` (HPE Cray PALS ``mpiexec``)
and ``srun`` (Slurm). Commands are built without a scheduler present, so a plan can be
printed on a laptop.

Environment variables travel **by name** (``-genvlist``, ``-x NAME``, ``--envlist``,
``--export=ALL,NAME``): their values are in the launcher's own environment and never on
its command line, where any user of the node can read them (``ps``).

GPU binding is done on the rank itself (`bind_rank`): each local rank sets the vendor's
visibility variable to its own GPUs or tiles (``"0.1"``), the way Aurora's
``gpu_tile_compact.sh`` does, because no launcher spells tiles the same way.
"""

from __future__ import annotations

import difflib
import functools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "LAUNCHERS",
    "LaunchRequest",
    "MpichLauncher",
    "OpenMpiLauncher",
    "PalsLauncher",
    "SrunLauncher",
    "bind_rank",
    "check_launcher_name",
    "detect_launcher",
    "get_launcher",
    "rank_cpus",
]

# Set on every rank: the node it runs on, and the GPUs of each local rank.
NODE_VAR = "SIMAI_NODE"
GPU_MAP_VAR = "SIMAI_GPU_MAP"  # "0.0,0.1;1.0,1.1": local rank i gets the i-th group
GPU_VAR_VAR = "SIMAI_GPU_VAR"  # which visibility variable the groups go into
LAUNCHER_VAR = "SIMAI_ORCHESTRATOR_LAUNCHER"

# Where each launcher tells a rank its host and its rank on that host.
_HOST_VARS = ("PMI_HOSTNAME", "PALS_HOSTNAME", "SLURMD_NODENAME")
_LOCAL_RANK_VARS = (
    "MPI_LOCALRANKID",
    "PALS_LOCAL_RANKID",
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "PMI_LOCAL_RANK",
)


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    """What a launcher is asked to start.

    ``cpus``: the cores of each node the component holds; `rank_cpus` splits them among
    the ``ppn`` local ranks. ``env_names``: variables the ranks must see, passed by name.
    """

    argv: tuple[str, ...]
    nprocs: int
    ppn: int = 1
    hosts: tuple[str, ...] = ()
    cpus: tuple[int, ...] | None = None
    env_names: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    @property
    def nnodes(self) -> int:
        return len(self.hosts) if self.hosts else max(1, -(-self.nprocs // self.ppn))


def rank_cpus(cpus: Sequence[int], ppn: int) -> list[list[int]]:
    """The cores of each local rank: equal blocks when they divide evenly, else one each."""
    cpus = list(cpus)
    if ppn > 0 and len(cpus) >= ppn and len(cpus) % ppn == 0:
        k = len(cpus) // ppn
        return [cpus[i * k : (i + 1) * k] for i in range(ppn)]
    return [[c] for c in cpus]


def _ranges(cores: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the form every launcher's CPU lists accept)."""
    out, start, prev = [], None, None
    for c in sorted(cores):
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = c
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


@dataclass(frozen=True)
class MpichLauncher:
    """MPICH's Hydra ``mpiexec``: ``-hosts``/``-ppn``, ``-bind-to user:``, ``-genvlist``."""

    exe: str = "mpiexec"
    name: str = field(default="mpich", init=False)

    def command(self, req: LaunchRequest) -> list[str]:
        cmd = [self.exe, "-n", str(req.nprocs)]
        if req.hosts:
            cmd += ["-hosts", ",".join(req.hosts), "-ppn", str(req.ppn)]
        if req.cpus:
            # user:a+b,c+d binds local rank 0 to a,b and local rank 1 to c,d.
            groups = ["+".join(map(str, g)) for g in rank_cpus(req.cpus, req.ppn)]
            cmd += ["-bind-to", "user:" + ",".join(groups)]
        if req.env_names:
            cmd += ["-genvlist", ",".join(req.env_names)]
        return [*cmd, *req.extra_args, *req.argv]


@dataclass(frozen=True)
class OpenMpiLauncher:
    """Open MPI's ``mpiexec``: ``--host h:ppn``, ``--map-by ppr:N:node``, ``-x NAME``."""

    exe: str = "mpiexec"
    name: str = field(default="openmpi", init=False)

    def command(self, req: LaunchRequest) -> list[str]:
        cmd = [self.exe, "-n", str(req.nprocs)]
        if req.hosts:
            cmd += ["--host", ",".join(f"{h}:{req.ppn}" for h in req.hosts)]
            cmd += ["--map-by", f"ppr:{req.ppn}:node"]
        if req.cpus:
            cmd += ["--cpu-set", _ranges(req.cpus), "--bind-to", "core"]
        for name in req.env_names:
            cmd += ["-x", name]
        return [*cmd, *req.extra_args, *req.argv]


@dataclass(frozen=True)
class PalsLauncher:
    """HPE Cray PALS ``mpiexec`` (Aurora, Polaris): ``--ppn``, ``--cpu-bind list:``, ``--envlist``."""

    exe: str = "mpiexec"
    name: str = field(default="pals", init=False)

    def command(self, req: LaunchRequest) -> list[str]:
        cmd = [self.exe, "-n", str(req.nprocs), "--ppn", str(req.ppn)]
        if req.hosts:
            cmd += ["--hosts", ",".join(req.hosts)]
        if req.cpus:
            # list:A:B:C, one colon-separated CPU set per local rank.
            sets = [_ranges(g) for g in rank_cpus(req.cpus, req.ppn)]
            cmd += ["--cpu-bind", "list:" + ":".join(sets)]
        if req.env_names:
            cmd += ["--envlist", ",".join(req.env_names)]
        return [*cmd, *req.extra_args, *req.argv]


@dataclass(frozen=True)
class SrunLauncher:
    """Slurm ``srun``: ``-N``, ``--ntasks-per-node``, ``--nodelist``, ``--cpu-bind=map_cpu|mask_cpu``."""

    exe: str = "srun"
    name: str = field(default="srun", init=False)

    def command(self, req: LaunchRequest) -> list[str]:
        cmd = [
            self.exe,
            f"--nodes={req.nnodes}",
            f"--ntasks={req.nprocs}",
            f"--ntasks-per-node={req.ppn}",
        ]
        if req.hosts:
            cmd.append("--nodelist=" + ",".join(req.hosts))
        if req.cpus:
            groups = rank_cpus(req.cpus, req.ppn)
            if all(len(g) == 1 for g in groups):
                cmd.append("--cpu-bind=map_cpu:" + ",".join(str(g[0]) for g in groups))
            else:
                masks = [hex(sum(1 << c for c in g)) for g in groups]
                cmd.append("--cpu-bind=mask_cpu:" + ",".join(masks))
        # ALL keeps the whole environment; the names make the intent explicit.
        cmd.append("--export=" + ",".join(["ALL", *req.env_names]))
        return [*cmd, *req.extra_args, *req.argv]


LAUNCHERS = {
    "mpich": MpichLauncher,
    "openmpi": OpenMpiLauncher,
    "pals": PalsLauncher,
    "srun": SrunLauncher,
}


def check_launcher_name(name: str | None) -> str | None:
    """``name`` if a launcher of that name exists (None passes), else ValueError with close matches."""
    if name is not None and name.lower() not in LAUNCHERS:
        get_launcher(name)
    return name


def get_launcher(name: str | None = None, env: Mapping[str, str] | None = None):
    """A launcher by name (built-ins, then the ``simai.orchestrator.launchers`` entry points).

    ``None`` detects one (`detect_launcher`). An unknown name raises ValueError with close
    matches.
    """
    name = name or detect_launcher(env)
    key = name.lower()
    if key in LAUNCHERS:
        return LAUNCHERS[key]()
    plugin = _plugins().get(key)
    if plugin is not None:
        return plugin.load()()
    known = sorted({*LAUNCHERS, *_plugins()})
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown launcher {name!r}{hint} (known: {', '.join(known)})")


@functools.cache
def _plugins() -> dict:
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep for ep in entry_points(group="simai.orchestrator.launchers")}


def detect_launcher(env: Mapping[str, str] | None = None) -> str:
    """``SIMAI_ORCHESTRATOR_LAUNCHER``; else ``srun`` inside a Slurm job that has it; else
    the ``mpiexec`` on PATH, from its ``--version`` (PALS, Open MPI, or MPICH when unsure)."""
    env = os.environ if env is None else env
    chosen = env.get(LAUNCHER_VAR)
    if chosen:
        return chosen
    if env.get("SLURM_JOB_ID") and shutil.which("srun"):
        return "srun"
    return _mpiexec_flavor(shutil.which("mpiexec") or "mpiexec")


@functools.cache
def _mpiexec_flavor(mpiexec: str) -> str:
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20)
        text = (out.stdout + out.stderr).lower()
    except (OSError, subprocess.TimeoutExpired):
        return "mpich"
    if "open mpi" in text or "openrte" in text or "open-mpi" in text:
        return "openmpi"
    if "pals" in text or "cray" in text:
        return "pals"
    return "mpich"


def gpu_map_value(groups: Sequence[Sequence[str]]) -> str:
    return ";".join(",".join(g) for g in groups)


def bind_rank(environ: dict | None = None) -> None:
    """On a rank: set ``SIMAI_NODE`` and this local rank's GPU visibility variable."""
    environ = os.environ if environ is None else environ
    host = next((environ[v] for v in _HOST_VARS if environ.get(v)), None)
    if host:
        environ[NODE_VAR] = host
    elif not environ.get(NODE_VAR):
        environ[NODE_VAR] = socket.gethostname()
    gmap, gvar = environ.get(GPU_MAP_VAR), environ.get(GPU_VAR_VAR)
    if gmap and gvar:
        local = next((environ[v] for v in _LOCAL_RANK_VARS if environ.get(v)), "0")
        groups = gmap.split(";")
        environ[gvar] = groups[int(local) % len(groups)]


def _exec_bound(argv: list[str]) -> None:
    """``python -m simai.orchestrator.launchers -- CMD...``: bind, then become CMD."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.exit("usage: python -m simai.orchestrator.launchers -- COMMAND [ARGS...]")
    bind_rank()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    _exec_bound(sys.argv[1:])
