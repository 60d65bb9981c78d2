"""`simai cluster`: rehearse a cluster job on a laptop, and plan launches without running them.

``simai cluster virtual N`` writes a node file of N loopback "nodes" (127.0.0.11 ...) and
prints the exports a job script would have (``PBS_NODEFILE``, the launcher). ``simai run
flow.yaml --dry-run`` places every component on the allocation's nodes and writes
``plan.json`` with each one's nodes, cores, GPUs and exact launch command.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import click

__all__ = ["cluster", "dry_run_file", "node_name", "write_plan"]


def node_name() -> str:
    """The node this rank runs on (a component for rehearsing placement)."""
    import socket

    return os.environ.get("SIMAI_NODE") or socket.gethostname()


@click.group()
def cluster() -> None:
    """Run and plan on a cluster allocation (or a virtual one on this machine)."""


@cluster.command()
@click.argument("nodes", type=click.IntRange(1, 200))
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("simai-cluster"),
    show_default=True,
    help="Where to write the node file (created 0700).",
)
def virtual(nodes: int, directory: Path) -> None:
    """Write a node file of NODES loopback nodes and print the exports for a job script.

    Every "node" is an address of 127.0.0.0/8 on this machine: services bind to it, and
    MPICH's fork launcher starts each node's ranks here while honouring -hosts. Use it as
    ``eval "$(simai cluster virtual 4)"``, then run the job script's simai commands.
    """
    from simai.orchestrator.allocation import virtual_cluster

    try:
        env = virtual_cluster(nodes, directory)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for key, value in env.items():
        click.echo(f"export {key}={shlex.quote(value)}")


def write_plan(plan: dict, path: str | os.PathLike[str]) -> Path:
    """Write a plan as JSON (replacing the file in one step)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(plan, f, indent=1)
    os.replace(tmp, path)
    return path


def dry_run_file(workflow: Any, out: Path | None) -> tuple[dict, Path]:
    """Plan a composed `Workflow` and write ``plan.json`` into ``out`` (or the cwd)."""
    path = (out or Path(".")) / "plan.json"
    plan = workflow.plan(path)
    return plan, path


def print_plan(plan: dict, path: Path, echo=click.echo) -> None:
    alloc = plan["allocation"]
    echo(
        f"{len(plan['components'])} components in {plan['waves']} waves on "
        f"{alloc['nodes']} nodes ({alloc['source']}); plan written to {path}"
    )
    for c in plan["components"]:
        if c["type"] != "remote":
            echo(f"  [{c['wave']}] {c['name']}: local, placed by the executor")
            continue
        nodes = c["nodes"]
        shown = ",".join(nodes[:4]) + (f",... ({len(nodes)})" if len(nodes) > 4 else "")
        echo(
            f"  [{c['wave']}] {c['name']}: {shown or 'this node'} cores {c['cores']} gpus {c['gpus']}"
        )
        echo(f"      {c['command_line']}")
