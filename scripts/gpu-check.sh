#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install the cuda extra, run every `gpu` test and the
# kernels benchmark on the device (our device time vs raw cupy timed with events, matmul
# TFLOP/s vs the FP32 peak, host<->device GB/s vs the PCIe link), and print one table.
# Usage: scripts/gpu-check.sh [OUT_DIR]   (default: gpu-check/; JUnit XML and bench JSON land there)
# Without a GPU it stops at once and says so (exit 2): it never reports a skipped run as a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU or driver on this machine (nvidia-smi is missing or fails); run it on a GPU node" >&2
  exit 2
fi
nvidia-smi -L

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q -c .ci/constraints.txt)
"${PIP[@]}" \
  -e packages/simai-kernels"[cuda,mpich,hdf5]" \
  -e packages/simai-datastore \
  -e packages/simai-profiling"[plot]" \
  -e packages/simai-components"[ai]" \
  -e packages/simai-orchestrator \
  -e packages/simai-bench \
  pytest pytest-timeout hypothesis
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p "$OUT"

status=0
.venv/bin/python -m pytest -m gpu -rs -q --junitxml="$OUT/gpu-tests.xml" || status=$?
.venv/bin/python bench/kernels.py --device cuda --json "$OUT/kernels-cuda.json" >"$OUT/kernels-cuda.log" 2>&1 || {
  echo "gpu-check: bench/kernels.py --device cuda failed:" >&2
  cat "$OUT/kernels-cuda.log" >&2
  status=1
}

# One table: the test outcome, then every device figure with its same-run reference.
.venv/bin/python - "$OUT" <<'EOF'
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

out = Path(sys.argv[1])
table = Table(title="simai on this GPU (scripts/gpu-check.sh)")
for col in ("check", "simai", "same-run reference", "ratio"):
    table.add_column(col, justify="left" if col == "check" else "right")
junit = out / "gpu-tests.xml"
if junit.is_file():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    table.add_row(
        "pytest -m gpu",
        f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped",
        "",
        "",
    )
bench = out / "kernels-cuda.json"
if bench.is_file():
    for r in json.loads(bench.read_text())["results"]:
        unit = r["unit"]
        fmt = (lambda v: f"{v * 1e6:.1f} µs") if unit == "s" else (lambda v, u=unit: f"{v:.3g} {u}")
        ref = "" if r["reference"] is None else fmt(r["reference"])
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        table.add_row(r["case"], fmt(r["ours"]), f"{ref} ({r['reference_name']})", ratio)
Console(width=250).print(table)
EOF
exit "$status"
