"""`simai bench`: no suite means every suite; skipped references say so and show no ratio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# A stand-in suite in the shape of bench/*.py: one measured reference, one that is skipped.
STUB = textwrap.dedent("""
    from _common import Result, note, parser, report

    args = parser("stub").parse_args()
    note("the ProxyStore references are skipped: proxystore is not installed")
    results = [
        Result("datastore", "a case whose name is long enough to wrap an eighty-column table",
               ours=2e-3, reference=1e-3, reference_name="np.copyto"),
        Result("datastore", "start-up", ours=5e-3, reference=None,
               reference_name="raw start-up not measured under --quick"),
    ]
    report("stub staging", results, args.json)
""")


@pytest.fixture
def bench_dir(tmp_path):
    if not (REPO / "bench" / "_common.py").is_file():
        pytest.skip("not a repository checkout (bench/ is absent)")
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(REPO / "bench" / "_common.py", bench / "_common.py")
    (bench / "datastore.py").write_text(STUB)
    return bench


def _simai(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SIMAI_BENCH_DIR", "COLUMNS")}
    cmd = [sys.executable, "-m", "simai.bench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_bench_without_a_suite_runs_every_suite_present(bench_dir, tmp_path):
    out = _simai("bench", "--quick", "--json", str(tmp_path / "results"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    # The suites that are not in this folder are named as skipped, not an error.
    for missing in ("orchestrator", "kernels", "fidelity", "startup"):
        assert f"skipping {missing}" in out.stdout
    data = json.loads((tmp_path / "results" / "datastore.json").read_text())
    ratios = {r["case"]: r["ratio"] for r in data["results"]}
    assert ratios["start-up"] is None and ratios[next(iter(ratios))] == pytest.approx(2.0)


def test_a_skipped_reference_is_noted_and_has_no_ratio_and_tables_do_not_wrap(bench_dir, tmp_path):
    out = _simai("bench", "datastore", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "note: the ProxyStore references are skipped" in out.stdout
    lines = out.stdout.splitlines()
    (skipped,) = [x for x in lines if "start-up" in x]
    assert "raw start-up not measured under --quick" in skipped and "x " not in skipped
    # Not a terminal: the long case name stays on its row, next to its ratio.
    (row,) = [x for x in lines if "long enough to wrap an eighty-column table" in x]
    assert "2.00x" in row


def test_the_staging_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from simai.bench._benchrun import staging_plot

    results = [
        {"case": f"redis {n} B", "ours": n / 1e8, "unit": "s",
         "extra": {"method": "redis", "size_bytes": n}}
        for n in (1024, 1 << 20)
    ]  # fmt: skip
    src = tmp_path / "r.json"
    src.write_text(json.dumps({"title": "t", "results": results}))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    with pytest.raises(ImportError, match=r"matplotlib is required .*simai-bench\[plot\]"):
        staging_plot(src, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
