"""The ``simai`` command line.

Exit codes: 0 success; 1 a component (or the run) failed; 2 bad input (a workflow
file that does not validate, an unknown name, a missing file or benchmark); 128+N a run
stopped by signal N after a graceful stop (130 SIGINT, 143 SIGTERM, 129 SIGHUP, 138
SIGUSR1).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# The orchestrator's values (simai.orchestrator._lifecycle), repeated so that `simai --help`
# imports no layer; tests/test_lifecycle.py checks that they agree.
DEFAULT_GRACE_S = 10.0
MAX_TIMEOUT_S = 30 * 24 * 3600.0

# Read straight from the entry points so that `simai --help` imports no layer.
_SERVER_TYPES = tuple(
    sorted({ep.name for ep in importlib.metadata.entry_points(group="simai.datastore.backends")})
)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and CI: rich would wrap tables at 80 columns; a log has no width to fit.
        console = Console(stderr=stderr, highlight=False, width=250)
    return console


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="simai-bench", prog_name="simai")
def main() -> None:
    """simai: emulate, benchmark and prototype AI-coupled HPC workflows."""


# ---------------------------------------------------------------------------- run
def _default_run_dir(name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(os.environ.get("SIMAI_BENCH_RUNS", "runs"))
    path = base / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{name}-{stamp}-{n}"
    return path


def _device_override(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # An environment variable, so components in worker processes and MPI ranks see it too.
    if value:
        from simai.kernels import DEVICE_ENV, check_device

        try:
            check_device(value, override=False)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        os.environ[DEVICE_ENV] = value


@main.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--device",
    metavar="DEVICE",
    expose_value=False,
    callback=_device_override,
    help="Run every kernel and model on DEVICE (cpu, cuda[:N], xpu[:N]) whatever the files say; sets SIMAI_DEVICE.",
)
@click.option(
    "--backend",
    metavar="TYPE",
    help=f"Staging server type, overriding the file's ({' | '.join(_SERVER_TYPES)}).",
)
@click.option(
    "--executor",
    metavar="NAME",
    help="Executor, overriding the file's (thread-pool, process-pool, dask, ray, ...).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory for trace.json, summary.json/csv, timeline.png, result.json (default runs/NAME-TIME).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TIMEOUT_S),
    help="Seconds (at most 30 days) before the run is interrupted: as on SIGTERM, what has "
    "not finished is stopped and reported.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0, max=3600),
    default=DEFAULT_GRACE_S,
    show_default=True,
    help="Seconds running components get to end after SIGTERM/SIGINT/SIGHUP/SIGUSR1 or "
    "--timeout before they are killed (a second signal skips it). Keep it below your batch "
    "scheduler's SIGTERM-to-SIGKILL delay.",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, path_type=Path),
    metavar="RUN_DIR",
    help="Re-run only the components that did not succeed in that earlier run (its "
    "result.json); the others keep their recorded results.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a field of the workflow file, e.g. --set components.0.args.nsteps=50 (YAML value).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Start nothing: place every component on the allocation's nodes and write "
    "plan.json (nodes, cores, GPUs, exact launch command) into --out (default: here).",
)
def run(
    workflow_file: Path,
    script_args: tuple[str, ...],
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    grace_period: float,
    resume: Path | None,
    overrides: tuple[str, ...],
    dry_run: bool = False,
) -> None:
    """Run a workflow file (.yaml, .yml, .json or a .py script).

    Arguments after ``--`` go to a .py script as its command line:
    ``simai run flow.py --out runs/x -- --nsteps 10``.
    """
    if not workflow_file.exists():
        _fail(f"no such workflow file: {workflow_file}")
    suffix = workflow_file.suffix.lower()
    if suffix == ".py":
        if overrides or resume:
            _fail("--set and --resume apply to YAML/JSON workflow files, not to Python scripts")
        if dry_run:
            _fail("--dry-run plans a YAML/JSON workflow file; from a script call Workflow.plan()")
        _exit_run(
            _run_script(workflow_file, backend, executor, out, timeout, script_args, grace_period)
        )
    if script_args:
        _fail(
            f"unexpected arguments {' '.join(script_args)!r}: only a .py workflow takes arguments (after --)"
        )
    if suffix not in (".yaml", ".yml", ".json"):
        _fail(f"{workflow_file}: a workflow is a .yaml, .yml, .json or .py file")
    if dry_run:
        _dry_run(workflow_file, backend, executor, out, overrides)
    _exit_run(
        _run_spec_file(
            workflow_file, backend, executor, out, timeout, overrides, grace_period, resume
        )
    )


@main.command()
@click.option(
    "--app",
    type=click.Choice(["insitu", "ensemble", "steering"]),
    default="insitu",
    show_default=True,
    help="Which mini-app.",
)
@click.option("--backend", metavar="TYPE", help="Staging server type (default: filesystem).")
@click.option("--executor", metavar="NAME", help="Executor (default: thread-pool).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a field of the mini-app's workflow file (see `simai run --help`).",
)
def demo(
    app: str,
    backend: str | None,
    executor: str | None,
    out: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Run a built-in mini-app (filesystem staging + thread pool; nothing on the network)."""
    from simai.bench.miniapps import config_path

    _exit_run(_run_spec_file(config_path(app), backend, executor, out, None, overrides))


def _exit_run(code: int) -> None:
    """Exit with the run's code, also when a component thread outlives the run.

    Such a component (past its timeout, or interrupted) is already reported, and its
    servers, staging and processes are gone; but Python joins non-daemon threads at exit,
    which would hold the command until the stuck function returns on its own.
    """
    import threading
    import time

    deadline = time.monotonic() + 2.0
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    if any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class _Interrupted(BaseException):
    """A stop signal reached the CLI outside a run (or after one ended): unwind quietly."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int) -> None:
    raise _Interrupted(signum)


def _exit_code(result: Any) -> int:
    import signal

    if result.interrupted in signal.Signals.__members__:
        return 128 + signal.Signals[result.interrupted].value
    return 0 if result.ok else EXIT_FAILED


def _load_spec(
    path: Path, backend: str | None, executor: str | None, overrides: tuple[str, ...]
) -> Any:
    import yaml

    from simai.bench.config import (
        WorkflowFileError,
        load_workflow_spec,
        parse_workflow_dict,
        read_workflow_file,
    )

    try:
        spec = load_workflow_spec(path)
        if not (backend or executor or overrides):
            return spec
        # Overrides apply to the document as written: a dump of the validated spec would
        # carry values the layers filled in (SystemConfig's detected cpus, say).
        data = read_workflow_file(path)
        if backend:
            data.setdefault("server", {})
            if data["server"].get("type") != backend:
                data["server"] = {"type": backend, "options": {}}
        if executor:
            data["orchestrator"] = {"name": executor}
        for item in overrides:
            field, eq, value = item.partition("=")
            if not eq or not field:
                raise WorkflowFileError(f"--set {item!r}: expected PATH=VALUE")
            _set_path(data, field.split("."), yaml.safe_load(value), item)
        return parse_workflow_dict(
            data, f"{path} (with command-line overrides)", base_dir=path.resolve().parent
        )
    except WorkflowFileError as exc:
        _fail(str(exc))


def _set_path(data: Any, parts: list[str], value: Any, item: str) -> None:
    from simai.bench.config import WorkflowFileError

    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise WorkflowFileError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])} is not an index of the list"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise WorkflowFileError(f"--set {item!r}: {'.'.join(parts[:i])} is not a mapping")


def _dry_run(
    path: Path, backend: str | None, executor: str | None, out: Path | None, overrides: tuple
) -> None:
    from simai.bench.cluster import dry_run_file, print_plan
    from simai.bench.config import WorkflowFileError
    from simai.bench.workflow import Workflow

    spec = _load_spec(path, backend, executor, overrides)
    try:
        plan, plan_path = dry_run_file(
            Workflow.from_spec(spec, base_dir=path.resolve().parent), out
        )
    except (WorkflowFileError, ValueError) as exc:
        _fail(str(exc))
    print_plan(plan, plan_path)
    sys.exit(0)


def _run_spec_file(
    path: Path,
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    overrides: tuple[str, ...],
    grace_period: float = DEFAULT_GRACE_S,
    resume: Path | None = None,
) -> int:
    from simai.bench.config import WorkflowFileError
    from simai.bench.workflow import Workflow
    from simai.orchestrator._lifecycle import SignalScope

    spec = _load_spec(path, backend, executor, overrides)
    if spec.profiling.sample_interval is not None:
        # start_run reads it, as do the run's processes on other nodes.
        os.environ["SIMAI_PROFILING_SAMPLE"] = repr(spec.profiling.sample_interval)
    try:
        workflow = Workflow.from_spec(spec, base_dir=path.resolve().parent)
    except (WorkflowFileError, ValueError) as exc:
        _fail(str(exc))
    workflow.grace_period = grace_period
    if resume is not None:
        from simai.bench.workflow import _succeeded_in

        try:
            _succeeded_in(resume)  # bad input: exit 2 before anything starts
        except ValueError as exc:
            _fail(f"--resume {resume}: {exc}")
    run_dir = out or _default_run_dir(spec.name)
    session = _CliSession(run_dir, single=True, profile=spec.profiling.enabled)
    try:
        # Outside the launch a stop signal just ends the command; inside, the workflow
        # stops gracefully first and then hands the signal on to this handler.
        with SignalScope(_raise_interrupted):
            result = workflow.launch(
                timeout=timeout, run_dir=run_dir, observer=session, resume=resume
            )
    except _Interrupted as exc:
        if session.results:
            return _exit_code(session.results[-1])
        return 128 + exc.signum
    return _exit_code(result)


def _run_script(
    path: Path,
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    script_args: tuple[str, ...] = (),
    grace_period: float = DEFAULT_GRACE_S,
) -> int:
    import runpy

    from simai.bench import workflow as wf
    from simai.orchestrator._lifecycle import SignalScope

    _check_override_names(backend, executor)
    stem = path.stem
    session = _CliSession(
        out or _default_run_dir(stem),
        single=False,
        backend=backend,
        executor=executor,
        grace_period=grace_period,
    )
    script_error = None
    try:
        with wf.observe(session), SignalScope(_raise_interrupted):
            sys.argv = [str(path), *script_args]
            sys.path.insert(0, str(path.resolve().parent))
            globs = runpy.run_path(str(path), run_name="__main__")
            if not session.results:
                # A script that only composes a workflow: launch what it defined.
                for value in list(globs.values()):
                    if isinstance(value, wf.Workflow):
                        value.launch(timeout=timeout)
    except _Interrupted as exc:
        # The script was stopped by a signal (after its launch in flight stopped cleanly).
        return 128 + exc.signum
    except SystemExit as exc:
        if exc.code not in (0, None):
            script_error = f"the script exited with {exc.code}"
    except Exception as exc:
        import traceback

        traceback.print_exc()
        script_error = f"the script raised {type(exc).__name__}: {exc}"
    if script_error:
        from rich.markup import escape

        _console(stderr=True).print(f"[bold red]error:[/] {escape(script_error)}")
        return EXIT_FAILED
    if not session.results:
        _console().print(f"{path} ran but launched no Workflow")
        return 0
    codes = [_exit_code(r) for r in session.results]
    return max(codes)


def _check_override_names(backend: str | None, executor: str | None) -> None:
    """Unknown --backend/--executor names: exit 2 with close matches before anything runs."""
    from pydantic import ValidationError

    from simai.bench.config import OrchestratorSpec, ServerSpec

    try:
        if executor:
            OrchestratorSpec(name=executor)
        if backend:
            ServerSpec(type=backend)
    except ValidationError as exc:
        _fail(exc.errors()[0]["msg"].removeprefix("Value error, "))


class _CliSession:
    """The CLI's `LaunchObserver`: overrides, live display, run directory and report."""

    def __init__(
        self,
        run_dir: Path,
        single: bool,
        backend: str | None = None,
        executor: str | None = None,
        profile: bool = True,
        grace_period: float | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.single = single
        self.backend = backend
        self.executor = executor
        self.profile = profile
        self.grace_period = grace_period
        self.results: list[Any] = []
        self.console = _console()
        self._registered: list[Any] = []
        self._current: tuple[Path, Any, Any] | None = None

    def _dir_for(self, workflow: Any) -> Path:
        if self.single:
            return self.run_dir
        n = len(self.results)
        # A workflow name is text, not a path: keep the run directory inside --out.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(workflow.name)).lstrip(".") or "workflow"
        return self.run_dir / (safe if n == 0 else f"{safe}-{n + 1}")

    def launching(self, workflow: Any, run_dir: Any = None) -> Path | None:
        import concurrent.futures as cf
        import threading

        from rich.markup import escape

        from simai.bench import _display

        self._apply_overrides(workflow)
        if self.grace_period is not None:
            workflow.grace_period = self.grace_period
        run_dir = Path(run_dir) if run_dir and self.single else self._dir_for(workflow)
        self.console.print(
            f"[bold]simai run[/] {escape(workflow.name)}: {len(workflow.components)} components on "
            f"{escape(workflow.orchestrator_config.name)}"
            + (
                f", staging through {escape(_server_type(workflow.server_config))}"
                if workflow.server_config
                else ""
            )
            + f"; run directory {escape(str(run_dir))}"
        )
        self._registered = workflow.components
        # The launch runs on the calling (main) thread, where stop signals arrive; the
        # live display follows it from a thread of its own.
        done: cf.Future = cf.Future()
        display = threading.Thread(
            target=_display.watch,
            args=(workflow, done, self.console),
            kwargs={"run_dir": run_dir if self.profile else None},
            name="simai-display",
            daemon=True,
        )
        display.start()
        self._current = (run_dir, done, display)
        return run_dir if self.profile else None

    def finished(self, workflow: Any, result: Any) -> Any:
        run_dir, done, display = self._current
        done.set_result(result)
        display.join(timeout=5)
        if result.run_dir is None:
            result.run_dir = run_dir
        from simai.bench.sweep import write_fingerprint_for

        write_fingerprint_for(workflow, run_dir)
        self._report(result, run_dir)
        self.results.append(result)
        return result

    def _apply_overrides(self, workflow: Any) -> None:
        if self.executor:
            from pydantic import ValidationError

            from simai.bench.config import OrchestratorSpec

            try:
                OrchestratorSpec(name=self.executor)
            except ValidationError as exc:
                _fail(exc.errors()[0]["msg"].removeprefix("Value error, "))
            workflow.orchestrator_config = workflow.orchestrator_config.model_copy(
                update={"name": self.executor}
            )
        if self.backend:
            if workflow.server_config is None:
                self.console.print(
                    "[yellow]note:[/] --backend applies only to a Workflow given server_config=...; "
                    "this script starts its own server"
                )
            else:
                from pydantic import ValidationError

                from simai.bench.config import ServerSpec

                try:
                    workflow.server_config = ServerSpec(type=self.backend).create_config()
                except ValidationError as exc:
                    _fail(exc.errors()[0]["msg"].removeprefix("Value error, "))

    def _report(self, result: Any, run_dir: Path) -> None:
        from rich.markup import escape

        from simai.bench import _display

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=repr))
        from simai.bench.sweep import write_run_report

        write_run_report(run_dir)
        registered = {c.name for c in getattr(self, "_registered", ())}
        self.console.print(_display.result_table(result, registered))
        if (t := _display.metrics_table(result, registered)) is not None:
            self.console.print(t)
        summary = result.files.get("summary_json") or (run_dir / "summary.json")
        if Path(summary).exists() and (t := _display.summary_table(Path(summary))) is not None:
            self.console.print(t)
        if Path(summary).exists():
            from simai.profiling.bottlenecks import format_critical_path
            from simai.profiling.resources import format_utilisation

            data = json.loads(Path(summary).read_text())
            if "critical_path" in data:
                self.console.print(escape(format_critical_path(data)), soft_wrap=True)
                self.console.print(escape(format_utilisation(data)), soft_wrap=True)
        if result.error:
            self.console.print(f"[bold red]run error:[/] {escape(result.error)}")
        written = [
            "result.json",
            *sorted(p.name for p in run_dir.iterdir() if p.name != "result.json" and p.is_file()),
        ]
        self.console.print(f"wrote {', '.join(written)} to {escape(str(run_dir))}", soft_wrap=True)
        if not result.ok:
            names = ", ".join(c.name for c in result.failed) or "the run"
            self.console.print(f"[bold red]failed:[/] {escape(names)}")


def _server_type(cfg: Any) -> str:
    return str(
        getattr(cfg, "type", None) or getattr(cfg, "server_type", None) or type(cfg).__name__
    )


# ---------------------------------------------------------------------------- listings
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def kernels(as_json: bool) -> None:
    """List the kernels by family."""
    from simai.kernels import list_kernels

    families = list_kernels()
    if not isinstance(families, dict):
        families = {"kernels": list(families)}
    if as_json:
        click.echo(json.dumps({k: list(v) for k, v in families.items()}, indent=2))
        return
    from rich.table import Table

    table = Table(title="simai kernels")
    table.add_column("family")
    table.add_column("kernels")
    for fam, names in families.items():
        table.add_row(fam, ", ".join(names))
    _console().print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def servers(as_json: bool) -> None:
    """List the staging server types and their options."""
    from simai.bench._introspect import server_types

    types = server_types()
    if as_json:
        click.echo(json.dumps(types, indent=2, default=str))
        return
    from rich.table import Table

    console = _console()
    for name, fields in types.items():
        table = Table(title=f"server type [bold]{name}[/]", title_justify="left")
        table.add_column("option")
        table.add_column("type")
        table.add_column("default")
        table.add_column("description", overflow="fold")
        for f in fields:
            table.add_row(f["name"], f["type"], f["default"], f["description"])
        console.print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def executors(as_json: bool) -> None:
    """List the executors the orchestrator can run components on."""
    from simai.bench._introspect import executor_types

    types = executor_types()
    if as_json:
        click.echo(json.dumps(types, indent=2, default=str))
        return
    from rich.table import Table

    table = Table(title="simai executors")
    table.add_column("executor")
    table.add_column("options", overflow="fold")
    for name, fields in types.items():
        table.add_row(
            name, ", ".join(f"{f['name']}={f['default']}" for f in fields) if fields else ""
        )
    _console().print(table)


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to a file instead of stdout.",
)
def schema(out: Path | None) -> None:
    """Print the JSON Schema of the workflow file format."""
    from simai.bench.config import workflow_json_schema

    text = json.dumps(workflow_json_schema(), indent=2)
    if out:
        out.write_text(text + "\n")
    else:
        click.echo(text)


@main.command()
@click.argument("trace_file", type=click.Path(path_type=Path))
@click.option(
    "--plot",
    "plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw the timeline to this PNG.",
)
@click.option(
    "--summary",
    "summary",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the per-operation summary (.json or .csv).",
)
def trace(trace_file: Path, plot: Path | None, summary: Path | None) -> None:
    """Summarise a Chrome/Perfetto trace.json written by a run; optionally plot its timeline."""
    from simai.bench._introspect import TraceTools

    if not trace_file.exists():
        _fail(f"no such trace file: {trace_file}")
    try:
        tools = TraceTools(trace_file)
        table = tools.table()
    except ValueError as exc:
        _fail(f"{trace_file}: {exc}")
    _console().print(table)
    if summary:
        tools.write_summary(summary)
        _console().print(f"wrote {summary}")
    if plot:
        tools.plot(plot)
        _console().print(f"wrote {plot}")


# ---------------------------------------------------------------------------- calibrate
@main.command()
@click.argument("trace_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--step", metavar="NAME", help="Name (or prefix) of the step events, e.g. 'NekRS::step'."
)
@click.option(
    "--kernel-map",
    "kernel_map",
    multiple=True,
    metavar="CATEGORY=KERNEL",
    help="Kernel for a category (gpu, cpu, memcpy, communication), e.g. gpu=MatMulGeneral; repeatable.",
)
@click.option(
    "--nsteps",
    type=click.IntRange(min=1),
    help="Steps to emulate (default: as many as the trace has).",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sim.yaml"),
    show_default=True,
    help="Workflow file to write (.yaml or .json).",
)
def calibrate(
    trace_file: Path, step: str | None, kernel_map: tuple[str, ...], nsteps: int | None, out: Path
) -> None:
    """Turn a Chrome-format trace (unitrace, torch.profiler, Perfetto JSON) into a mini-app."""
    from simai.bench.calibrate import calibrate as _calibrate
    from simai.bench.calibrate import parse_kernel_map, write_workflow

    if not trace_file.is_file():
        _fail(f"no such trace file: {trace_file}")
    try:
        workflow = _calibrate(
            trace_file, step, kernel_map=parse_kernel_map(kernel_map), nsteps=nsteps
        )
    except ValueError as exc:
        _fail(str(exc))
    write_workflow(workflow, out)
    ref = workflow["components"][0]["args"]["reference"]
    shares = ", ".join(f"{k} {100 * v:.1f} %" for k, v in ref["shares"].items() if v > 0)
    _console().print(
        f"{ref['steps']} steps of {ref['step']!r}: median {1e3 * ref['median_s']:.3f} ms, "
        f"p95 {1e3 * ref['p95_s']:.3f} ms ({shares}); wrote {out}"
    )


# ---------------------------------------------------------------------------- report, sweep
@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write (default: RUN_DIR/report.html for one run, report.html for several).",
)
@click.option("--title", help="Title of the report.")
def report(run_dirs: tuple[Path, ...], out: Path | None, title: str | None) -> None:
    """Write a self-contained HTML report of a run, or a comparison of several runs."""
    from simai.bench.sweep import report_command

    report_command(run_dirs, out, title, _console(), _fail)


@main.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", metavar="A,B", help="Staging server types to sweep (comma-separated).")
@click.option("--executor", metavar="X,Y", help="Executors to sweep (comma-separated).")
@click.option(
    "--vary",
    "--set",
    "vary",
    multiple=True,
    metavar="PATH=[V1,V2]",
    help="A field of the workflow file and its values (YAML/JSON list, or V1,V2); repeatable.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    help="Runs per cell (default: the file's sweep.repeat, else 1).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Sweep directory.")
@click.option("--force", is_flag=True, help="Re-run cells that already succeeded.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TIMEOUT_S),
    help="Seconds per cell before its unfinished components are failed.",
)
@click.option(
    "--nodes",
    metavar="2,4,8",
    help="Node counts: write one batch job script per cell (not run here); run the sweep "
    "again after the jobs to collect them.",
)
@click.option(
    "--scheduler",
    type=click.Choice(["slurm", "pbs"]),
    help="Job script flavour for --nodes (default: sbatch or qsub on PATH).",
)
@click.option(
    "--job-option",
    "job_options",
    multiple=True,
    metavar="TEXT",
    help="Extra job directive for --nodes, e.g. --job-option=--account=X; repeatable.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0, max=3600),
    help="Each cell's `simai run --grace-period` (seconds to end after a stop signal).",
)
def sweep(
    workflow_file: Path,
    backend: str | None,
    executor: str | None,
    vary: tuple[str, ...],
    repeat: int | None,
    out: Path | None,
    force: bool,
    timeout: float | None,
    nodes: str | None,
    scheduler: str | None,
    job_options: tuple[str, ...],
    grace_period: float | None,
) -> None:
    """Run a workflow file over backends x executors x varied fields, one run directory per cell.

    Axes not given here come from the file's sweep: section; each one given replaces
    that axis of the file (--vary PATH replaces only PATH).
    """
    from simai.bench.sweep import sweep_command

    for name in (backend or "").split(","):
        if name.strip():
            _check_override_names(name.strip(), None)
    for name in (executor or "").split(","):
        if name.strip():
            _check_override_names(None, name.strip())
    sys.exit(
        sweep_command(
            workflow_file,
            backend,
            executor,
            vary,
            repeat,
            out,
            force,
            timeout,
            _console(),
            _fail,
            nodes=nodes,
            scheduler=scheduler,
            job_options=job_options,
            grace_period=grace_period,
        )
    )


# ---------------------------------------------------------------------------- bench
def _register_bench() -> None:
    from simai.bench._benchrun import bench
    from simai.bench.cluster import cluster

    main.add_command(bench)
    main.add_command(cluster)


_register_bench()


if __name__ == "__main__":  # pragma: no cover
    main()
