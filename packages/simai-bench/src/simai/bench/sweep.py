"""`simai sweep`: run a workflow file over backends x executors x varied fields.

Each cell runs as its own ``simai run`` process (a crash or a stuck component of one
cell cannot take the sweep down, and servers are started and stopped per cell) in its
own run directory under one sweep directory. A cell whose ``result.json`` says it
succeeded is skipped when the sweep is run again (``force=True`` re-runs everything);
a failing cell is recorded and the sweep goes on. At the end: ``sweep.csv`` (one row per
cell x repeat), ``sweep.json`` and one comparison ``report.html``.

The axes come from the workflow file's ``sweep:`` section (``SweepSpec``) and from the
arguments; an axis given as an argument replaces the file's (a ``vary`` path replaces
only that path).
"""

from __future__ import annotations

import csv
import datetime as _dt
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("simai.bench")

__all__ = [
    "SWEEP_SCHEMA_VERSION",
    "SweepCell",
    "SweepResult",
    "SweepTerminated",
    "file_axes",
    "parse_axis",
    "plan_sweep",
    "run_sweep",
    "validate_cells",
    "write_fingerprint_for",
    "write_run_report",
]

SWEEP_SCHEMA_VERSION = 1


class SweepTerminated(KeyboardInterrupt):
    """A stop signal other than Ctrl-C (a scheduler's SIGTERM) reached the sweep only."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# --------------------------------------------------------------------------- run artifacts


def write_fingerprint_for(workflow: Any, run_dir: str | os.PathLike[str]) -> Path | None:
    """``fingerprint.json`` for a workflow that just ran in this process (never raises)."""
    try:
        from simai.profiling.report import write_fingerprint

        spec = getattr(workflow, "spec", None)
        if spec is not None:
            config = spec.model_dump(mode="json", exclude_unset=True)
        else:
            config = {
                "name": workflow.name,
                "orchestrator": _dump(workflow.orchestrator_config),
                "system": _dump(workflow.system_config),
                "server": _dump(workflow.server_config),
                "components": [c.name for c in workflow.components],
            }
        return write_fingerprint(run_dir, config)
    except Exception as exc:  # a missing fingerprint must not fail a finished run
        log.warning("could not write fingerprint.json: %s", exc)
        return None


def _dump(model: Any) -> Any:
    if model is None:
        return None
    dump = getattr(model, "model_dump", None)
    return dump(mode="json") if dump else repr(model)


def write_run_report(run_dir: str | os.PathLike[str]) -> Path | None:
    """``report.html`` beside ``trace.json``; ``None`` (and a warning) if it cannot be drawn."""
    try:
        from simai.profiling.report import write_report

        return write_report([run_dir], Path(run_dir) / "report.html")
    except ImportError as exc:
        log.warning("no report.html: %s", exc)
    except Exception as exc:
        log.warning("could not write report.html: %s", exc)
    return None


# --------------------------------------------------------------------------- plan


def parse_axis(item: str) -> tuple[str, list[Any]]:
    """``PATH=[v1, v2]`` (a YAML/JSON list), ``PATH=v1,v2`` or ``PATH=v`` -> (path, values)."""
    import yaml

    path, eq, text = item.partition("=")
    path = path.strip()
    if not eq or not path:
        raise ValueError(f"--vary {item!r}: expected PATH=[v1,v2,...]")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"--vary {item!r}: the values are not YAML/JSON: {exc}") from None
    if isinstance(value, list):
        values = value
    elif isinstance(value, str) and "," in value:
        values = [yaml.safe_load(v.strip()) for v in value.split(",")]
    else:
        values = [value]
    if not values:
        raise ValueError(f"--vary {item!r}: no values")
    return path, values


@dataclass
class SweepCell:
    """One run of the sweep: a combination of the axes and a repeat index."""

    index: int
    backend: str | None
    executor: str | None
    settings: dict[str, Any]
    repeat: int
    run_dir: Path
    nodes: int | None = None  # set: the cell is a batch job script, not run here
    status: str = "pending"  # pending | skipped | succeeded | failed | interrupted | job script
    job_script: Path | None = None
    exit_code: int | None = None
    seconds: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        parts = [
            f"backend={self.backend}" if self.backend else "",
            f"executor={self.executor}" if self.executor else "",
        ]
        parts += [f"nodes={self.nodes}"] if self.nodes else []
        parts += [f"{k}={v}" for k, v in self.settings.items()]
        return " ".join(p for p in parts if p) + f" repeat={self.repeat}"


@dataclass
class SweepResult:
    sweep_dir: Path
    cells: list[SweepCell]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status in ("succeeded", "skipped", "job script") for c in self.cells)

    @property
    def failed(self) -> list[SweepCell]:
        return [c for c in self.cells if c.status == "failed"]


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)[:60] or "_"


def plan_sweep(
    sweep_dir: str | os.PathLike[str],
    *,
    backends: Sequence[str | None] = (None,),
    executors: Sequence[str | None] = (None,),
    vary: Mapping[str, Sequence[Any]] | None = None,
    repeat: int = 1,
    nodes: Sequence[int] | None = None,
) -> list[SweepCell]:
    """The cells, in the order they run; directory names are stable across calls."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    vary = dict(vary or {})
    for path, values in vary.items():
        if not values:
            raise ValueError(f"vary {path!r}: no values")
    backends = list(backends) or [None]
    executors = list(executors) or [None]
    node_counts: list[int | None] = list(nodes) if nodes else [None]
    for n in node_counts:
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"nodes: each count must be a positive integer, got {n!r}")
    sweep_dir = Path(sweep_dir)
    cells = []
    axes = list(vary)
    for backend, executor, n, *values in itertools.product(
        backends, executors, node_counts, *vary.values()
    ):
        settings = dict(zip(axes, values, strict=True))
        name = (
            "__".join(
                [x for x in (backend, executor) if x]
                + ([f"nodes-{n}"] if n else [])
                + [f"{path.rsplit('.', 1)[-1]}-{_slug(v)}" for path, v in settings.items()]
            )
            or "run"
        )
        for r in range(repeat):
            cells.append(
                SweepCell(
                    index=len(cells),
                    backend=backend,
                    executor=executor,
                    settings=settings,
                    repeat=r,
                    run_dir=sweep_dir / (f"{_slug(name)}__r{r}" if repeat > 1 else _slug(name)),
                    nodes=n,
                )
            )
    names = [c.run_dir for c in cells]
    if len(set(names)) != len(names):  # two vary paths ending in the same field name
        for c in cells:
            c.run_dir = c.run_dir.with_name(f"{c.index:03d}-{c.run_dir.name}")
    return cells


# --------------------------------------------------------------------------- run


def _succeeded(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / "result.json").read_text()).get("ok"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def _command(
    flow: Path, cell: SweepCell, timeout: float | None, grace_period: float | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "simai.bench.cli", "run", str(flow), "--out", str(cell.run_dir)]
    if grace_period is not None:
        cmd += ["--grace-period", str(grace_period)]
    if cell.backend:
        cmd += ["--backend", cell.backend]
    if cell.executor:
        cmd += ["--executor", cell.executor]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    for path, value in cell.settings.items():
        cmd += ["--set", f"{path}={json.dumps(value)}"]
    return cmd


def file_axes(flow: str | os.PathLike[str]) -> Any:
    """The ``sweep:`` section of a workflow file as a ``SweepSpec`` (empty when it has none).

    Raises ``WorkflowFileError`` naming the field (``sweep.backend``) when it does not validate.
    """
    from pydantic import BaseModel, ConfigDict, ValidationError

    from simai.bench.config import (
        SweepSpec,
        WorkflowFileError,
        format_validation_error,
        read_workflow_file,
    )

    class _Section(BaseModel):  # only the sweep: key; the rest is checked per cell
        model_config = ConfigDict(extra="ignore")
        sweep: SweepSpec | None = None

    doc = read_workflow_file(flow)
    if not isinstance(doc, dict):
        raise WorkflowFileError(f"{flow}: the top level must be a mapping")
    try:
        return _Section.model_validate(doc).sweep or SweepSpec()
    except ValidationError as exc:
        raise WorkflowFileError(format_validation_error(exc, str(flow))) from None


def run_sweep(
    flow: str | os.PathLike[str],
    *,
    backends: Sequence[str | None] | None = None,
    executors: Sequence[str | None] | None = None,
    vary: Mapping[str, Sequence[Any]] | None = None,
    repeat: int | None = None,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    timeout: float | None = None,
    report: bool = True,
    on_cell: Callable[[SweepCell, int], None] | None = None,
    nodes: Sequence[int] | None = None,
    scheduler: str | None = None,
    job_options: Sequence[str] = (),
    grace_period: float | None = None,
) -> SweepResult:
    """Run ``flow`` (a .yaml/.json workflow file) for every cell, one after the other.

    ``backends``/``executors``: names overriding the file's server/orchestrator (a
    ``None`` entry keeps it); ``vary``: ``{"components.0.args.data_size": [100000,
    1000000]}``, each a field path as for ``simai run --set``; ``repeat``: runs per
    combination. Each axis left ``None`` (and each path not in ``vary``) comes from the
    file's ``sweep:`` section, else is a single cell that keeps the file. ``timeout``: seconds per
    cell before its unfinished components are failed. ``on_cell(cell, total)`` is
    called when a cell starts and again when it ends. Never raises for a failing cell:
    see ``SweepResult.failed``.

    ``nodes=[2, 4, 8]`` adds a node-count axis whose cells are not run here: each gets a
    batch job script (``scheduler`` ``"slurm"`` or ``"pbs"``; default: whichever of
    ``sbatch``/``qsub`` is on PATH) in its run directory, with ``job_options`` as extra
    directive lines (``--account=X``, ``-l walltime=1:00:00``). Submit them; calling
    ``run_sweep`` again later skips the cells whose jobs succeeded and writes
    ``sweep.csv`` and the comparison report over them. ``grace_period``: each cell's
    ``simai run --grace-period``.
    """
    flow = Path(flow)
    if not flow.is_file():
        raise FileNotFoundError(f"no such workflow file: {flow}")
    if flow.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ValueError(f"{flow}: a sweep runs a .yaml, .yml or .json workflow file")
    axes = file_axes(flow)
    backends = backends if backends is not None else (axes.backend or [None])
    executors = executors if executors is not None else (axes.executor or [None])
    vary = {**axes.vary, **(vary or {})}
    repeat = repeat if repeat is not None else axes.repeat
    nodes = nodes if nodes is not None else (axes.nodes or None)
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(os.environ.get("SIMAI_BENCH_RUNS", "runs")) / f"sweep-{flow.stem}-{stamp}"
    sweep_dir = Path(out)
    cells = plan_sweep(
        sweep_dir, backends=backends, executors=executors, vary=vary, repeat=repeat, nodes=nodes
    )
    validate_cells(flow, cells)
    if nodes:
        scheduler = _scheduler(scheduler)
    sweep_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    total = len(cells)
    for cell in cells:
        if not force and _succeeded(cell.run_dir):
            cell.status = "skipped"
            if on_cell:
                on_cell(cell, total)
            continue
        if cell.nodes:
            cell.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            cell.job_script = _write_job_script(
                flow, cell, timeout, scheduler, job_options, grace_period
            )
            cell.status = "job script"
            if on_cell:
                on_cell(cell, total)
            continue
        cell.status = "running"
        if on_cell:
            on_cell(cell, total)
        cell.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (cell.run_dir / "result.json").unlink(missing_ok=True)
        t0 = time.monotonic()
        log_fd = os.open(
            cell.run_dir / "simai-run.log",
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
            0o600,
        )
        with os.fdopen(log_fd, "w") as logf:
            proc = subprocess.Popen(
                _command(flow, cell, timeout, grace_period),
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "COLUMNS": "120"},
            )
            try:
                proc.wait()
            except BaseException as exc:
                _stop_cell(proc, grace_period, forward=isinstance(exc, SweepTerminated))
                cell.status, cell.exit_code = "interrupted", proc.returncode
                cell.seconds = time.monotonic() - t0
                cell.error = "the sweep was interrupted"
                if on_cell:
                    on_cell(cell, total)
                result = SweepResult(sweep_dir, cells)
                result.files["json"] = _write_json(result, flow, vary)
                result.files["csv"] = _write_csv(result)
                raise
        cell.seconds = time.monotonic() - t0
        cell.exit_code = proc.returncode
        cell.status = "succeeded" if proc.returncode == 0 and _succeeded(cell.run_dir) else "failed"
        if cell.status == "failed":
            cell.error = _cell_error(cell)
        if on_cell:
            on_cell(cell, total)
    result = SweepResult(sweep_dir, cells)
    result.files["json"] = _write_json(result, flow, vary)
    result.files["csv"] = _write_csv(result)
    if report:
        runs = [c.run_dir for c in cells if (c.run_dir / "result.json").is_file()]
        if runs:
            try:
                from simai.profiling.report import write_report

                result.files["report"] = write_report(
                    runs,
                    sweep_dir / "report.html",
                    title=f"simai sweep · {flow.name} · {len(runs)} runs",
                )
            except Exception as exc:
                log.warning("could not write the sweep report: %s", exc)
    return result


def _scheduler(name: str | None) -> str:
    import shutil

    if name is None:
        name = "slurm" if shutil.which("sbatch") else "pbs" if shutil.which("qsub") else None
        if name is None:
            raise ValueError("--nodes writes batch job scripts: give --scheduler slurm or pbs")
    if name not in ("slurm", "pbs"):
        raise ValueError(f"scheduler {name!r}: expected 'slurm' or 'pbs'")
    return name


def _write_job_script(
    flow: Path,
    cell: SweepCell,
    timeout: float | None,
    scheduler: str,
    options: Sequence[str],
    grace_period: float | None = None,
) -> Path:
    """A job script that runs this cell's `simai run` on a ``cell.nodes``-node allocation.

    The allocation's nodes reach the workflow through ``SLURM_NODELIST``/``PBS_NODEFILE``.
    """
    import shlex

    run_dir = cell.run_dir.resolve()
    cmd = _command(flow.resolve(), cell, timeout, grace_period)
    cmd[cmd.index("--out") + 1] = str(run_dir)
    name = f"simai-{cell.run_dir.name}"[:60]
    log_path = shlex.quote(str(run_dir / "job.log"))
    if scheduler == "slurm":
        head = [
            f"#SBATCH --job-name={name}",
            f"#SBATCH --nodes={cell.nodes}",
            f"#SBATCH --output={log_path}",
        ]
        head += [f"#SBATCH {o}" for o in options]
        submit = "sbatch"
    else:
        head = [
            f"#PBS -N {name}",
            f"#PBS -l select={cell.nodes}",
            "#PBS -j oe",
            f"#PBS -o {log_path}",
        ]
        head += [f"#PBS {o}" for o in options]
        submit = "qsub"
    text = "\n".join(
        [
            "#!/bin/bash",
            *head,
            f"# simai sweep cell: {cell.label}; submit with: {submit} {run_dir / 'job.sh'}",
            "set -euo pipefail",
            f"cd {shlex.quote(str(Path.cwd()))}",
            "exec " + shlex.join(cmd),
            "",
        ]
    )
    from simai.profiling.report import write_text_atomic

    path = write_text_atomic(cell.run_dir / "job.sh", text)
    path.chmod(0o700)
    return path


def _stop_cell(proc: subprocess.Popen, grace_period: float | None, forward: bool) -> None:
    """End an interrupted cell's `simai run` the way a scheduler would, so that it stops
    its own servers and workers: it may already be doing so (Ctrl-C reaches the whole
    process group), else SIGTERM, and SIGKILL only past its grace period."""

    # `simai run` stops within its grace period (10 s by default) after a signal.
    grace = (grace_period if grace_period is not None else 10.0) + 20.0
    steps = [(signal.SIGTERM, grace), (signal.SIGKILL, 10.0)]
    if not forward:  # Ctrl-C went to the whole process group: the cell has it already
        steps.insert(0, (None, grace))
    for sig, wait_s in steps:
        if proc.poll() is not None:
            return
        if sig is not None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _cell_error(cell: SweepCell) -> str:
    try:
        data = json.loads((cell.run_dir / "result.json").read_text())
        msgs = [data.get("error")] + [
            f"{c['name']}: {c.get('error')}" for c in data.get("components", []) if c.get("error")
        ]
        msgs = [m for m in msgs if m]
        if msgs:
            return "; ".join(msgs)[:500]
    except (OSError, json.JSONDecodeError):
        pass
    try:
        tail = (
            (cell.run_dir / "simai-run.log").read_text(errors="replace").strip().splitlines()[-3:]
        )
    except OSError:
        tail = []
    return f"exit code {cell.exit_code}" + (": " + " | ".join(tail) if tail else "")


def _write_json(result: SweepResult, flow: Path, vary: Mapping[str, Sequence[Any]]) -> Path:
    path = result.sweep_dir / "sweep.json"
    data = {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "workflow_file": str(flow),
        "vary": {k: list(v) for k, v in vary.items()},
        "cells": [
            {
                "index": c.index,
                "run_dir": str(c.run_dir),
                "nodes": c.nodes,
                "job_script": str(c.job_script) if c.job_script else None,
                "backend": c.backend,
                "executor": c.executor,
                "settings": c.settings,
                "repeat": c.repeat,
                "status": c.status,
                "exit_code": c.exit_code,
                "seconds": c.seconds,
                "error": c.error,
            }
            for c in result.cells
        ],
    }
    from simai.profiling.report import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, default=str))
    return path


def _write_csv(result: SweepResult) -> Path:
    """One row per cell x repeat: the axes, the outcome, the run's main metrics."""
    from simai.profiling.report import load_run, run_metrics

    rows = []
    for c in result.cells:
        row: dict[str, Any] = {
            "schema_version": SWEEP_SCHEMA_VERSION,
            "cell": c.run_dir.name,
            "backend": c.backend or "",
            "executor": c.executor or "",
            **({"nodes": c.nodes} if c.nodes else {}),
            **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in c.settings.items()},
            "repeat": c.repeat,
            "status": c.status,
            "error": c.error or "",
        }
        try:
            metrics = run_metrics(load_run(c.run_dir))
        except (ValueError, OSError):
            metrics = {}
        if c.status == "skipped":
            row["status"] = "succeeded (earlier run)"
        for key in ("wall_s", "spans", "errors", "copy_mb_per_s"):
            row[key] = metrics.get(key)
        if not c.backend and metrics.get("backend"):
            row["backend"] = metrics["backend"]
        if not c.executor and metrics.get("executor"):
            row["executor"] = metrics["executor"]
        row.update(
            {
                k: v
                for k, v in metrics.items()
                if k.endswith(("duration_s", ".count")) or "MB/s" in k or "|err|" in k
            }
        )
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    import io

    from simai.profiling.report import write_text_atomic

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return write_text_atomic(result.sweep_dir / "sweep.csv", buf.getvalue())


def validate_cells(flow: Path, cells: Sequence[SweepCell]) -> None:
    """Check every distinct cell's workflow document before anything runs.

    Raises ``WorkflowFileError`` naming the cell, so a misspelled ``--vary`` path fails
    at once instead of failing every cell after the first has run.
    """
    import copy

    from simai.bench.cli import _set_path
    from simai.bench.config import WorkflowFileError, parse_workflow_dict, read_workflow_file

    base = read_workflow_file(flow)
    seen = set()
    for cell in cells:
        key = (cell.backend, cell.executor, json.dumps(cell.settings, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        data = copy.deepcopy(base)
        if not isinstance(data, dict):
            raise WorkflowFileError(f"{flow}: the top level must be a mapping")
        if cell.backend and (data.get("server") or {}).get("type") != cell.backend:
            data["server"] = {"type": cell.backend, "options": {}}
        if cell.executor:
            data["orchestrator"] = {"name": cell.executor}
        for path, value in cell.settings.items():
            _set_path(data, path.split("."), value, f"{path}={value!r}")
        parse_workflow_dict(
            data, f"{flow} (sweep cell {cell.label})", base_dir=flow.resolve().parent
        )


# --------------------------------------------------------------------------- CLI bodies


def report_command(
    run_dirs: Sequence[Path], out: Path | None, title: str | None, console: Any, fail: Callable
) -> None:
    from simai.profiling.report import write_report

    dirs = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            fail(f"{d}: no such run directory")
        if (d / "sweep.json").is_file() and not (d / "result.json").is_file():
            # A sweep directory: compare its cells.
            cells = json.loads((d / "sweep.json").read_text()).get("cells", [])
            dirs += [
                Path(c["run_dir"]) for c in cells if Path(c["run_dir"], "result.json").is_file()
            ]
        else:
            dirs.append(d)
    if out is None:
        out = dirs[0] / "report.html" if len(dirs) == 1 else Path("report.html")
    try:
        path = write_report(dirs, out, title=title)
    except ImportError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(dirs)} run(s))", soft_wrap=True
    )


def sweep_command(
    flow: Path,
    backend: str | None,
    executor: str | None,
    vary_items: Sequence[str],
    repeat: int | None,
    out: Path | None,
    force: bool,
    timeout: float | None,
    console: Any,
    fail: Callable,
    nodes: str | None = None,
    scheduler: str | None = None,
    job_options: Sequence[str] = (),
    grace_period: float | None = None,
) -> int:
    from simai.bench.config import WorkflowFileError

    if not flow.is_file():
        fail(f"no such workflow file: {flow}")
    if flow.suffix.lower() not in (".yaml", ".yml", ".json"):
        fail(f"{flow}: a sweep runs a .yaml, .yml or .json workflow file")
    # An option not given (None) leaves that axis to the file's sweep: section.
    backends = [b.strip() for b in backend.split(",") if b.strip()] if backend else None
    executors = [e.strip() for e in executor.split(",") if e.strip()] if executor else None
    vary: dict[str, list[Any]] = {}
    try:
        for item in vary_items:
            path, values = parse_axis(item)
            if path in vary:
                raise ValueError(f"--vary {path} given twice")
            vary[path] = values
        try:
            node_counts = [int(n) for n in (nodes or "").split(",") if n.strip()] or None
        except ValueError:
            raise ValueError(f"--nodes {nodes!r}: expected node counts such as 2,4,8") from None
    except ValueError as exc:
        fail(str(exc))

    def show(cell: SweepCell, total: int) -> None:
        # One plain line per event: readable in a batch job's log, never a wrapped table.
        where = f"[{cell.index + 1}/{total}] {cell.label}"
        if cell.status == "running":
            console.print(f"{where}: running -> {cell.run_dir}", soft_wrap=True, markup=False)
        elif cell.status == "job script":
            console.print(
                f"{where}: job script {cell.job_script} (submit it; run this sweep again "
                "afterwards to collect the results)",
                soft_wrap=True,
                markup=False,
            )
        elif cell.status == "skipped":
            console.print(
                f"{where}: already succeeded, skipped (--force re-runs)",
                soft_wrap=True,
                markup=False,
            )
        else:
            extra = f": {cell.error}" if cell.error else ""
            console.print(
                f"{where}: {cell.status} in {cell.seconds:.1f} s{extra}",
                soft_wrap=True,
                markup=False,
            )

    import threading

    if threading.current_thread() is threading.main_thread():
        # A batch scheduler's SIGTERM stops the sweep like Ctrl-C: the running cell is
        # ended gracefully and sweep.csv/json record it as interrupted.
        def terminated(signum: int, frame: Any) -> None:
            raise SweepTerminated(signum)

        signal.signal(signal.SIGTERM, terminated)
    try:
        result = run_sweep(
            flow,
            backends=backends,
            executors=executors,
            vary=vary,
            repeat=repeat,
            out=out,
            force=force,
            timeout=timeout,
            on_cell=show,
            nodes=node_counts,
            scheduler=scheduler,
            job_options=job_options,
            grace_period=grace_period,
        )
    except (ValueError, WorkflowFileError) as exc:  # raised before any cell runs
        fail(str(exc))
    except KeyboardInterrupt as exc:
        console.print("sweep interrupted: run the same command again to resume", markup=False)
        return 128 + (exc.signum if isinstance(exc, SweepTerminated) else signal.SIGINT)
    done = sum(c.status in ("succeeded", "skipped") for c in result.cells)
    console.print(
        f"sweep: {done}/{len(result.cells)} cells succeeded; wrote "
        + ", ".join(str(p) for p in result.files.values()),
        soft_wrap=True,
        markup=False,
    )
    return 0 if result.ok else 1
