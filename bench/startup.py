"""Import and start-up: what a user waits for before any work happens.

* ``import simai.<layer>`` for each layer, each in a fresh interpreter (median wall time
  of several), next to ``python -c pass`` (the interpreter alone) and ``import numpy``
  (the dependency every layer but the orchestrator needs) measured in the same run.
  The extra columns give the import cost above the bare interpreter and the heaviest
  modules the import pulled in (``-X importtime``, cumulative).
* One span recorded into a run (what each instrumented kernel call or DataStore
  operation pays while profiling) next to the same span through opentelemetry-api with
  no SDK installed.
* ``simai run`` to the first component start: wall time from launching the CLI to the
  first ``orchestrator.component`` span of the run's trace, next to ``simai --version``
  (the CLI process alone). The workflow is mini-app 1 cut to a few iterations.

    python bench/startup.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, parser, report

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LAYERS = ("kernels", "datastore", "profiling", "components", "orchestrator", "bench")
# simai.profiling resolves its names lazily; this is what a profiled run's set-up loads.
EXTRA_MODULES = ("simai.profiling.tracing",)
# No run of ours may be joined by accident, and BLAS threads must not skew start-up.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SIMAI_", "OTEL_"))}


def wall(cmd: list[str], rounds: int, cwd: str | None = None) -> float:
    samples = []
    for _ in range(rounds + 1):  # the first run warms the page cache and .pyc files
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=ENV, cwd=cwd, capture_output=True, timeout=120)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples[1:])


def _importtime(code: str) -> dict[str, int]:
    """Cumulative import time (µs) of each top-level package imported by ``code``."""
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", code], env=ENV, capture_output=True, text=True, timeout=120
    )
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and "." not in parts[2].strip():
            name = parts[2].strip()
            cumulative[name] = max(cumulative.get(name, 0), int(parts[1]))
    return cumulative


def heaviest_imports(module: str, n: int = 3) -> list[str]:
    """The packages outside simai that cost ``import module`` the most."""
    interpreter = set(_importtime("pass"))
    rows = [
        (us, name)
        for name, us in _importtime(f"import {module}").items()
        if name not in interpreter and name != "simai"
    ]
    return [f"{name} {us / 1e3:.0f} ms" for us, name in sorted(rows, reverse=True)[:n]]


def import_results(rounds: int) -> list[Result]:
    bare = wall([PY, "-c", "pass"], rounds)
    numpy = wall([PY, "-c", "import numpy"], rounds)
    results = [
        Result(
            "startup",
            "import numpy (reference)",
            numpy,
            bare,
            "python -c pass",
            extra={"above_interpreter_s": numpy - bare},
        )
    ]
    for module in [f"simai.{layer}" for layer in LAYERS] + list(EXTRA_MODULES):
        t = wall([PY, "-c", f"import {module}"], rounds)
        results.append(
            Result(
                "startup",
                f"import {module}",
                t,
                numpy,
                "import numpy",
                extra={
                    "above_interpreter_s": t - bare,
                    "python_c_pass_s": bare,
                    "heaviest": heaviest_imports(module),
                },
            )
        )
    return results


def first_component_result(rounds: int) -> Result | None:
    simai = shutil.which("simai", path=str(Path(PY).parent)) or shutil.which("simai")
    workflow = ROOT / "examples" / "miniapps" / "insitu.yaml"
    if simai is None or not workflow.is_file():
        print("skipped 'simai run' start-up: no simai CLI or examples/miniapps/insitu.yaml")
        return None
    from simai.profiling import load_spans

    cli = wall([simai, "--version"], rounds)
    delays, to_root, root_to_first = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            out = Path(tmp) / f"run{i}"
            start_ns = time.time_ns()
            subprocess.run(
                [simai, "run", str(workflow), "--out", str(out),
                 "--set", "components.1.args.iterations=3"],
                check=True, env=ENV, capture_output=True, timeout=300, cwd=tmp,
            )  # fmt: skip
            spans = load_spans(out)
            starts = [s.start_ns for s in spans if s.name == "orchestrator.component"]
            if not starts:
                print("skipped 'simai run' start-up: the trace has no orchestrator.component span")
                return None
            root = min(s.start_ns for s in spans if s.parent_id is None)
            delays.append((min(starts) - start_ns) / 1e9)
            # Where the time goes: CLI import + config + copy-bandwidth probe, then the
            # orchestrator from the root span to the first component.
            to_root.append((root - start_ns) / 1e9)
            root_to_first.append((min(starts) - root) / 1e9)
    return Result(
        "startup",
        "simai run -> first component start",
        statistics.median(delays),
        cli,
        "simai --version",
        extra={
            "samples_s": delays,
            "launch_to_root_span_s": statistics.median(to_root),
            "root_span_to_first_component_s": statistics.median(root_to_first),
        },
    )


def span_overhead_result(n: int) -> Result:
    """Cost of one span recorded into a run vs the same span with no SDK (API no-op)."""
    from opentelemetry import trace

    from simai.profiling import start_run

    tracer = trace.get_tracer("bench.startup")
    attrs = {"simai.kernel": "MatMulSimple2D", "simai.component": "sim"}

    def spans() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            with tracer.start_as_current_span("kernel.MatMulSimple2D", attributes=attrs):
                pass
        return (time.perf_counter() - t0) / n

    noop = min(spans() for _ in range(3))  # before any provider exists: the API no-op
    with tempfile.TemporaryDirectory() as tmp, start_run(tmp, copy_bandwidth=False):
        recorded = min(spans() for _ in range(3))
    return Result("startup", "one span, recorded into a run", recorded, noop, "same span, no SDK")


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    rounds = 3 if args.quick else 7
    results = import_results(rounds)
    if (first := first_component_result(2 if args.quick else 3)) is not None:
        results.append(first)
    results.append(span_overhead_result(2000 if args.quick else 20000))
    report("Import and start-up (median wall time, fresh interpreter each)", results, args.json)
    for r in results:
        if "launch_to_root_span_s" in r.extra:
            print(f"{r.case}: {r.extra['launch_to_root_span_s'] * 1e3:.0f} ms to the root span "
                  f"(CLI imports, config, copy-bandwidth probe), then "
                  f"{r.extra['root_span_to_first_component_s'] * 1e3:.0f} ms to the first "
                  "component")  # fmt: skip
        if r.extra.get("heaviest"):
            print(f"{r.case}: +{r.extra['above_interpreter_s'] * 1e3:.0f} ms over the interpreter; "
                  f"heaviest: {', '.join(r.extra['heaviest'])}")  # fmt: skip


if __name__ == "__main__":
    main()
