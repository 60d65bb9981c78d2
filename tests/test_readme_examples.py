"""Both examples of the original SimAI-Bench README, with only their imports changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.mpi
@pytest.mark.slow
def test_basic_example_runs_both_components_one_under_mpiexec(tmp_path, cli):
    out = cli.run("run", str(EXAMPLES / "readme_basic.py"), "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    result = cli.result_of(tmp_path / "workflow")
    assert cli.statuses(result) == {"sim": "succeeded", "sim2": "succeeded"}
    sim, sim2 = result["components"]
    assert sim["end"] <= sim2["start"]  # the dependency held
    from simai.profiling import load_spans

    spans = load_spans(tmp_path / "workflow")
    # The "remote" component really ran as an MPI rank (its spans carry the rank) ...
    assert any(s.rank == 0 and s.name == "kernel.MatMulSimple2D" for s in spans)
    # ... and sim2 read what sim wrote, through the filesystem backend.
    reads = [s for s in spans if s.name == "datastore.stage_read"]
    assert reads and reads[0].attributes.get("simai.backend") == "filesystem"


@pytest.mark.mpi
@pytest.mark.slow
def test_basic_example_as_a_plain_script(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_basic.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr
    assert "failed" not in out.stderr  # launch() logs failed components at ERROR level


@pytest.mark.slow
def test_dynamic_example_chains_ten_runtime_tasks(tmp_path):
    probe = textwrap.dedent(f"""
        import json, runpy
        g = runpy.run_path({str(EXAMPLES / "readme_dynamic.py")!r})
        records = g["orchestrator"].records()
        print("RECORDS=" + json.dumps({{n: [r.status, r.started, r.error] for n, r in records.items()}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("RECORDS="))
    records = json.loads(line.removeprefix("RECORDS="))
    assert set(records) == {"sim", *(f"sim{i}" for i in range(10))}
    assert all(status == "succeeded" for status, _, _ in records.values()), records
    starts = [records[f"sim{i}"][1] for i in range(10)]
    assert starts == sorted(starts)  # each child waited for the one before


def test_the_original_import_paths_exist():
    import simai.bench as bench
    from simai.bench.component import WorkflowComponent
    from simai.bench.datastore import DataStore
    from simai.bench.orchestrator import Orchestrator, OrchetratorClient

    assert bench.OrchetratorClient is OrchetratorClient and bench.Orchestrator is Orchestrator
    assert bench.WorkflowComponent is WorkflowComponent and bench.DataStore is DataStore
    assert bench.OchestratorConfig is bench.OrchestratorConfig
    for name in bench.__all__:
        assert getattr(bench, name) is not None
