"""Launch a ``type="remote"`` component through ``mpiexec`` (MPICH/Hydra or Open MPI).

A command string runs as given on every rank; a callable is cloudpickled into a private
temporary directory and each rank runs it through ``python -m simai.orchestrator._mpi_entry``
with MPI initialised (mpi4py). The component's result is the list of per-rank return values.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

__all__ = ["MpiFlavor", "build_mpiexec_command", "detect_flavor", "host_list", "run_remote"]

STDERR_TAIL_BYTES = 4000


class MpiFlavor:
    MPICH = "mpich"
    OPENMPI = "openmpi"


@functools.cache
def detect_flavor(mpiexec: str = "mpiexec") -> str:
    """MPICH (Hydra) or Open MPI, from ``mpiexec --version``; MPICH when unsure."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20)
        text = (out.stdout + out.stderr).lower()
    except (OSError, subprocess.TimeoutExpired):
        return MpiFlavor.MPICH
    if "open mpi" in text or "openrte" in text or "open-mpi" in text:
        return MpiFlavor.OPENMPI
    return MpiFlavor.MPICH


def host_list(env: dict[str, str] | None = None) -> list[str]:
    """Hosts of the current batch job (PBS, then Slurm), unique, in order; [] outside a job."""
    env = os.environ if env is None else env
    nodefile = env.get("PBS_NODEFILE")
    if nodefile and os.path.exists(nodefile):
        with open(nodefile) as f:
            return list(dict.fromkeys(line.strip() for line in f if line.strip()))
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if nodelist:
        if shutil.which("scontrol"):
            out = subprocess.run(
                ["scontrol", "show", "hostnames", nodelist],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if out.returncode == 0:
                return [h for h in out.stdout.split() if h]
        return _expand_slurm(nodelist)
    return []


def _expand_slurm(nodelist: str) -> list[str]:
    """Expand ``a[01-03,7],b`` without scontrol (the common forms only)."""
    hosts, buf, depth = [], "", 0
    parts = []
    for ch in nodelist:
        if ch == "," and depth == 0:
            parts.append(buf)
            buf = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        buf += ch
    parts.append(buf)
    for part in filter(None, parts):
        if "[" not in part:
            hosts.append(part)
            continue
        prefix, rest = part.split("[", 1)
        ranges, suffix = rest.split("]", 1)
        for r in ranges.split(","):
            lo, _, hi = r.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{str(i).zfill(len(lo))}{suffix}")
    return hosts


def build_mpiexec_command(
    argv: Sequence[str],
    nprocs: int,
    ppn: int,
    hosts: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cpus: Sequence[int] | None = None,
    flavor: str | None = None,
    mpiexec: str = "mpiexec",
) -> list[str]:
    """The mpiexec line for ``argv`` with the flavour's spelling of env, hosts and binding."""
    flavor = flavor or detect_flavor(mpiexec)
    cmd = [mpiexec, "-n", str(nprocs)]
    if flavor == MpiFlavor.OPENMPI:
        if hosts:
            cmd += ["--host", ",".join(f"{h}:{ppn}" for h in hosts)]
        for k, v in (env or {}).items():
            cmd += ["-x", f"{k}={v}"]
        if cpus and not hosts:
            cmd += ["--cpu-set", ",".join(map(str, cpus)), "--bind-to", "core"]
    else:
        if hosts:
            cmd += ["-hosts", ",".join(hosts), "-ppn", str(ppn)]
        for k, v in (env or {}).items():
            cmd += ["-genv", k, v]
        if cpus and not hosts:
            # Hydra binds rank i to the i-th entry (round-robin when ranks outnumber CPUs).
            cmd += ["-bind-to", "user:" + ",".join(map(str, cpus))]
    return cmd + list(argv)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: str, nbytes: int = STDERR_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_remote(
    name: str,
    executable,
    args: dict,
    nprocs: int,
    ppn: int,
    env: dict[str, str],
    hosts: Sequence[str] = (),
    cpus: Sequence[int] | None = None,
    timeout: float | None = None,
):
    """Run a remote component to completion; raise RemoteLaunchError/ComponentTimeout on failure."""
    import cloudpickle

    from simai.orchestrator.errors import ComponentTimeout, RemoteLaunchError

    if shutil.which("mpiexec") is None:
        raise RemoteLaunchError(
            f"component {name!r} is type='remote' but no mpiexec is on PATH "
            "(install MPI, e.g. pip install 'simai-orchestrator[mpi]' mpich)",
            name,
        )
    # Ranks on other nodes read the payload: SIMAI_ORCHESTRATOR_TMPDIR should then be shared.
    tmp_root = os.environ.get("SIMAI_ORCHESTRATOR_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix=f"simai-{_safe(name)}-", dir=tmp_root) as tmp:
        if callable(executable):
            payload = os.path.join(tmp, "task.pkl")
            with open(payload, "wb") as f:
                cloudpickle.dump((executable, args), f)
            argv = [sys.executable, "-m", "simai.orchestrator._mpi_entry", payload]
        else:
            argv = shlex.split(executable)
        cmd = build_mpiexec_command(argv, nprocs, ppn, hosts, env, cpus)
        child_env = {**os.environ, **env}
        out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                env=child_env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ComponentTimeout(
                    f"component {name!r} exceeded its timeout of {timeout}s under mpiexec; "
                    f"stderr tail:\n{_tail(err_path)}",
                    name,
                ) from None
            except BaseException:
                _kill_group(proc)
                raise
        if rc != 0:
            tail = _tail(err_path)
            raise RemoteLaunchError(
                f"component {name!r}: mpiexec -n {nprocs} exited with code {rc}; stderr tail:\n{tail}",
                name,
                rc,
                tail,
            )
        if not callable(executable):
            return _tail(out_path, 1 << 20)
        results = []
        for rank in range(nprocs):
            path = os.path.join(tmp, f"result.{rank}.pkl")
            if not os.path.exists(path):
                raise RemoteLaunchError(
                    f"component {name!r}: rank {rank} exited 0 without a result; stderr tail:\n"
                    f"{_tail(err_path)}",
                    name,
                    rc,
                )
            with open(path, "rb") as f:  # written by our own entry point in our private dir
                results.append(cloudpickle.load(f))
        return results


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
