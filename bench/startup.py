"""Import and start-up: what a user waits for before any work happens.

* ``import simai.<layer>`` for each layer, each in a fresh interpreter (median wall time
  of several), next to ``python -c pass`` (the interpreter alone) and ``import numpy``
  (the dependency every layer but the orchestrator needs) measured in the same run.
  The extra columns give the import cost above the bare interpreter and the heaviest
  modules the import pulled in (``-X importtime``, cumulative).
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
from _common import Result, parser, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LAYERS = ("kernels", "datastore", "profiling", "components", "orchestrator", "bench")
# No run of ours may be joined by accident, and BLAS threads must not skew start-up.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SIMAI_", "OTEL_"))}


def wall(cmd: list[str], rounds: int, cwd: str | None = None) -> float:
    samples = []
    for _ in range(rounds + 1):  # the first run warms the page cache and .pyc files
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=ENV, cwd=cwd, capture_output=True, timeout=120)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples[1:])


def heaviest_imports(module: str, n: int = 3) -> list[str]:
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", f"import {module}"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = len(name) - len(name.lstrip())
        name = name.strip()
        # Top-level third-party packages only: their cumulative time is what we pay.
        if depth <= 2 and not name.startswith(("simai", "_")) and "." not in name:
            rows.append((int(parts[1]), name))
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
    for layer in LAYERS:
        t = wall([PY, "-c", f"import simai.{layer}"], rounds)
        results.append(
            Result(
                "startup",
                f"import simai.{layer}",
                t,
                numpy,
                "import numpy",
                extra={
                    "above_interpreter_s": t - bare,
                    "python_c_pass_s": bare,
                    "heaviest": heaviest_imports(f"simai.{layer}"),
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
    delays = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            out = Path(tmp) / f"run{i}"
            start_ns = time.time_ns()
            subprocess.run(
                [simai, "run", str(workflow), "--out", str(out),
                 "--set", "components.1.args.iterations=3"],
                check=True, env=ENV, capture_output=True, timeout=300, cwd=tmp,
            )  # fmt: skip
            starts = [s.start_ns for s in load_spans(out) if s.name == "orchestrator.component"]
            if not starts:
                print("skipped 'simai run' start-up: the trace has no orchestrator.component span")
                return None
            delays.append((min(starts) - start_ns) / 1e9)
    return Result(
        "startup",
        "simai run -> first component start",
        statistics.median(delays),
        cli,
        "simai --version",
        extra={"samples_s": delays},
    )


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    rounds = 3 if args.quick else 7
    results = import_results(rounds)
    if (first := first_component_result(2 if args.quick else 3)) is not None:
        results.append(first)
    report("Import and start-up (median wall time, fresh interpreter each)", results, args.json)
    for r in results:
        if r.extra.get("heaviest"):
            print(f"{r.case}: +{r.extra['above_interpreter_s'] * 1e3:.0f} ms over the interpreter; "
                  f"heaviest: {', '.join(r.extra['heaviest'])}")  # fmt: skip


if __name__ == "__main__":
    main()
