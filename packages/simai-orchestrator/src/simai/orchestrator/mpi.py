"""Launch a ``type="remote"`` component through ``mpiexec`` (MPICH/Hydra or Open MPI).

A command string runs as given on every rank; a callable is cloudpickled into a private
temporary directory and each rank runs it through ``python -m simai.orchestrator._mpi_entry``
with MPI initialised (mpi4py). The component's result is the list of per-rank return values.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

__all__ = ["MpiFlavor", "build_mpiexec_command", "detect_flavor", "host_list", "run_remote"]

STDERR_TAIL_BYTES = 4000


class MpiFlavor:
    MPICH = "mpich"
    OPENMPI = "openmpi"


def detect_flavor(mpiexec: str = "mpiexec") -> str:
    """The launcher the ``mpiexec`` on PATH is (mpich, openmpi or pals), from ``--version``."""
    from simai.orchestrator.launchers import _mpiexec_flavor

    return _mpiexec_flavor(mpiexec)


def host_list(env: dict[str, str] | None = None) -> list[str]:
    """Hosts of the current batch job (see `simai.orchestrator.allocation.Allocation.detect`)."""
    from simai.orchestrator.allocation import Allocation

    return list(Allocation.detect(env).nodes)


def build_mpiexec_command(
    argv: Sequence[str],
    nprocs: int,
    ppn: int,
    hosts: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cpus: Sequence[int] | None = None,
    flavor: str | None = None,
    mpiexec: str = "mpiexec",
    launcher: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The launch line for ``argv``: the launcher's spelling of hosts, binding and env.

    ``env`` is passed by name only: its values must be in the launcher's environment
    (`run_remote` puts them there), never on the command line.
    """
    from simai.orchestrator.launchers import LaunchRequest, get_launcher

    chosen = get_launcher(launcher or flavor)
    if mpiexec != "mpiexec" and getattr(chosen, "exe", None) == "mpiexec":
        chosen = dataclasses.replace(chosen, exe=mpiexec)
    req = LaunchRequest(
        argv=tuple(argv),
        nprocs=nprocs,
        ppn=ppn,
        hosts=tuple(hosts),
        cpus=tuple(cpus) if cpus else None,
        env_names=tuple(env or ()),
        extra_args=tuple(extra_args),
    )
    return chosen.command(req)


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
    launcher: str | None = None,
    launcher_args: Sequence[str] = (),
):
    """Run a remote component to completion; raise RemoteLaunchError/ComponentTimeout on failure."""
    import cloudpickle

    from simai.orchestrator import _lifecycle
    from simai.orchestrator.errors import ComponentTimeout, RemoteLaunchError
    from simai.orchestrator.launchers import GPU_MAP_VAR, get_launcher

    chosen = get_launcher(launcher)
    exe = getattr(chosen, "exe", "mpiexec")
    if shutil.which(exe) is None:
        raise RemoteLaunchError(
            f"component {name!r} is type='remote' but {exe} ({chosen.name} launcher) is not "
            "on PATH (install MPI, e.g. pip install 'simai-orchestrator[mpi]' mpich)",
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
            if GPU_MAP_VAR in env:
                # Each rank narrows GPU visibility to its own before the command starts.
                argv = [sys.executable, "-m", "simai.orchestrator.launchers", "--", *argv]
        cmd = build_mpiexec_command(
            argv, nprocs, ppn, hosts, env, cpus, launcher=chosen.name, extra_args=launcher_args
        )
        child_env = {**os.environ, **env}
        out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            # Its own process group (mpiexec, hydra_pmi_proxy, the ranks), ended on
            # timeout, interrupt, and by the kernel if the thread that started it dies.
            proc = _lifecycle.popen(
                cmd, stdout=out, stderr=err, env=child_env, stdin=subprocess.DEVNULL
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _lifecycle.kill_group(proc)
                raise ComponentTimeout(
                    f"component {name!r} exceeded its timeout of {timeout}s under mpiexec; "
                    f"stderr tail:\n{_tail(err_path)}",
                    name,
                ) from None
            except BaseException:
                _lifecycle.kill_group(proc)
                raise
            _lifecycle.reap(proc)
        if rc != 0:
            tail = _tail(err_path)
            raise RemoteLaunchError(
                f"component {name!r}: {exe} ({chosen.name}) with {nprocs} ranks exited with "
                f"code {rc}; stderr tail:\n{tail}",
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
