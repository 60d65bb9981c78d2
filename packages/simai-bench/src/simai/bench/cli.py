"""The ``simai`` command line.

Exit codes: 0 success; 1 a component (or the run) failed; 2 bad input (a workflow
file that does not validate, an unknown name, a missing file or benchmark).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

_SERVER_TYPES = ("filesystem", "node-local", "redis", "dragon", "daos")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and CI: rich would wrap tables at 80 columns.
        console = Console(stderr=stderr, highlight=False, width=120)
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


@main.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
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
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds before unfinished components are failed.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a field of the workflow file, e.g. --set components.0.args.nsteps=50 (YAML value).",
)
def run(
    workflow_file: Path,
    script_args: tuple[str, ...],
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    overrides: tuple[str, ...],
) -> None:
    """Run a workflow file (.yaml, .yml, .json or a .py script).

    Arguments after ``--`` go to a .py script as its command line:
    ``simai run flow.py --out runs/x -- --nsteps 10``.
    """
    if not workflow_file.exists():
        _fail(f"no such workflow file: {workflow_file}")
    suffix = workflow_file.suffix.lower()
    if suffix == ".py":
        if overrides:
            _fail("--set applies to YAML/JSON workflow files, not to Python scripts")
        _exit_run(_run_script(workflow_file, backend, executor, out, timeout, script_args))
    if script_args:
        _fail(
            f"unexpected arguments {' '.join(script_args)!r}: only a .py workflow takes arguments (after --)"
        )
    if suffix not in (".yaml", ".yml", ".json"):
        _fail(f"{workflow_file}: a workflow is a .yaml, .yml, .json or .py file")
    _exit_run(_run_spec_file(workflow_file, backend, executor, out, timeout, overrides))


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
    """Exit with the run's code, also when a component thread outlives its timeout.

    Such a component is already reported as failed, but Python joins pool threads at
    exit, which would hold the command until the stuck function returns on its own.
    """
    import concurrent.futures.thread as cft
    import time

    # The pool threads Python joins at exit (idle ones leave within moments of shutdown).
    pool_threads = list(getattr(cft, "_threads_queues", {}))
    deadline = time.monotonic() + 2.0
    for t in pool_threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in pool_threads):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _load_spec(
    path: Path, backend: str | None, executor: str | None, overrides: tuple[str, ...]
) -> Any:
    import yaml

    from simai.bench.config import WorkflowFileError, load_workflow_spec, parse_workflow_dict

    try:
        spec = load_workflow_spec(path)
        if not (backend or executor or overrides):
            return spec
        data = spec.model_dump(exclude_unset=True)
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
        return parse_workflow_dict(data, f"{path} (with command-line overrides)")
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


def _run_spec_file(
    path: Path,
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    overrides: tuple[str, ...],
) -> int:
    from simai.bench.config import WorkflowFileError
    from simai.bench.workflow import Workflow

    spec = _load_spec(path, backend, executor, overrides)
    try:
        workflow = Workflow.from_spec(spec, base_dir=path.resolve().parent)
    except (WorkflowFileError, ValueError) as exc:
        _fail(str(exc))
    run_dir = out or _default_run_dir(spec.name)
    session = _CliSession(run_dir, single=True)
    result = session.launch(
        workflow, timeout=timeout, run_dir=run_dir, profile=spec.profiling.enabled
    )
    return 0 if result.ok else EXIT_FAILED


def _run_script(
    path: Path,
    backend: str | None,
    executor: str | None,
    out: Path | None,
    timeout: float | None,
    script_args: tuple[str, ...] = (),
) -> int:
    import runpy

    from simai.bench import workflow as wf

    _check_override_names(backend, executor)
    stem = path.stem
    session = _CliSession(
        out or _default_run_dir(stem), single=False, backend=backend, executor=executor
    )
    wf._set_session(session)
    script_error = None
    try:
        sys.argv = [str(path), *script_args]
        sys.path.insert(0, str(path.resolve().parent))
        globs = runpy.run_path(str(path), run_name="__main__")
        if not session.results:
            # A script that only composes a workflow: launch what it defined.
            for value in list(globs.values()):
                if isinstance(value, wf.Workflow):
                    value.launch(timeout=timeout)
    except SystemExit as exc:
        if exc.code not in (0, None):
            script_error = f"the script exited with {exc.code}"
    except Exception as exc:
        import traceback

        traceback.print_exc()
        script_error = f"the script raised {type(exc).__name__}: {exc}"
    finally:
        wf._set_session(None)
    if script_error:
        from rich.markup import escape

        _console(stderr=True).print(f"[bold red]error:[/] {escape(script_error)}")
        return EXIT_FAILED
    if not session.results:
        _console().print(f"{path} ran but launched no Workflow")
        return 0
    return 0 if all(r.ok for r in session.results) else EXIT_FAILED


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
    """Where `Workflow.launch()` lands while the CLI runs: live display, run directory, report."""

    def __init__(
        self, run_dir: Path, single: bool, backend: str | None = None, executor: str | None = None
    ):
        self.run_dir = Path(run_dir)
        self.single = single
        self.backend = backend
        self.executor = executor
        self.results: list[Any] = []
        self.console = _console()
        self._registered: list[Any] = []

    def _dir_for(self, workflow: Any) -> Path:
        if self.single:
            return self.run_dir
        n = len(self.results)
        # A workflow name is text, not a path: keep the run directory inside --out.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(workflow.name)).lstrip(".") or "workflow"
        return self.run_dir / (safe if n == 0 else f"{safe}-{n + 1}")

    def launch(
        self, workflow: Any, timeout: float | None = None, run_dir: Any = None, profile: bool = True
    ) -> Any:
        from rich.markup import escape

        from simai.bench import _display

        self._apply_overrides(workflow)
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
        fut = workflow.launch_async(timeout=timeout, run_dir=run_dir if profile else None)
        result = _display.watch(workflow, fut, self.console)
        if result.run_dir is None:
            result.run_dir = run_dir
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
        registered = {c.name for c in getattr(self, "_registered", ())}
        self.console.print(_display.result_table(result, registered))
        if (t := _display.metrics_table(result, registered)) is not None:
            self.console.print(t)
        summary = result.files.get("summary_json") or (run_dir / "summary.json")
        if Path(summary).exists() and (t := _display.summary_table(Path(summary))) is not None:
            self.console.print(t)
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
    from simai.bench._introspect import trace_tools

    if not trace_file.exists():
        _fail(f"no such trace file: {trace_file}")
    try:
        tools = trace_tools(trace_file)
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


# ---------------------------------------------------------------------------- bench
@main.command()
@click.argument(
    "suite",
    type=click.Choice(["datastore", "orchestrator", "kernels", "fidelity", "startup", "all"]),
)
@click.option("--quick", is_flag=True, help="Fewer sizes and rounds.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Write the results as JSON: a file, or for 'all' a directory (one SUITE.json each).",
)
@click.option(
    "--plot",
    "plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Staging plot path for the datastore suite (default: next to the JSON, else bench-datastore.png).",
)
@click.option(
    "--bench-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SIMAI_BENCH_DIR",
    help="Folder holding the suites (default: ./bench, or SIMAI_BENCH_DIR).",
)
def bench(
    suite: str, quick: bool, json_path: Path | None, plot: Path | None, bench_dir: Path | None
) -> None:
    """Run the repository's benchmark suites (bench/<suite>.py); every figure is a same-run ratio."""
    from simai.bench import _benchrun

    try:
        code = _benchrun.run_suites(
            suite,
            quick=quick,
            json_path=json_path,
            plot=plot,
            bench_dir=bench_dir,
            console=_console(),
        )
    except _benchrun.BenchNotFound as exc:
        _fail(str(exc))
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
