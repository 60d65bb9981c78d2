"""The three mini-apps end to end through `simai run`, shrunk with --set to a few seconds each."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

MINIAPPS = Path(__file__).resolve().parents[1] / "examples" / "miniapps"

SHORT_INSITU = ["--set", "components.1.args.iterations=20"]
SHORT_ENSEMBLE = ["--set", "components.3.args.iterations=20"]
SHORT_STEERING = [
    "--set",
    "components.0.args.rounds=2",
    "--set",
    "components.0.args.batch=3",
    "--set",
    "components.0.args.dock_time=0.2",
    "--set",
    "components.0.args.library_size=64",
]


def _run(cli, tmp_path, yaml_name, *args):
    out = cli.run("run", str(MINIAPPS / yaml_name), "--out", str(tmp_path), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    result = cli.result_of(tmp_path)
    assert result["ok"], result
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "arrays_per_s" in out.stdout and "emulation_error_median_pct" in out.stdout
    return {c["name"]: c["value"] for c in result["components"]}, out


def _check_insitu_pair(sim: dict, train: dict) -> None:
    assert sim["killed"] is True  # the trainer's kill message ended it
    assert sim["arrays_written"] >= 1 and train["arrays_read"] >= 1
    assert train["arrays_read"] <= sim["arrays_written"]
    assert sim["MB_per_s"] > 0 and train["MB_per_s"] > 0
    # Measured (a NaN would mean no step had a target) and non-negative (an absolute error).
    for side in (sim, train):
        assert 0 <= side["emulation_error_median_pct"] < math.inf


@pytest.mark.slow
def test_insitu_on_the_embedded_defaults(cli, tmp_path):
    values, _ = _run(cli, tmp_path, "insitu.yaml", *SHORT_INSITU)
    _check_insitu_pair(values["sim"], values["train"])
    assert values["train"]["iterations"] == 20
    from simai.profiling import load_spans

    spans = load_spans(tmp_path)
    writes = [
        s
        for s in spans
        if s.name == "datastore.stage_write" and s.attributes.get("simai.bytes", 0) > 1e6
    ]
    assert writes and {s.attributes["simai.backend"] for s in writes} == {"filesystem"}
    # the 319,488-element float32 field plus its small header
    assert all(0 <= s.attributes["simai.bytes"] - 319_488 * 4 < 1024 for s in writes)


@pytest.mark.slow
@pytest.mark.redis
def test_insitu_switches_to_redis_with_one_option(cli, tmp_path):
    values, out = _run(cli, tmp_path, "insitu.yaml", "--backend", "redis", *SHORT_INSITU)
    _check_insitu_pair(values["sim"], values["train"])
    assert "staging through redis" in out.stdout
    from simai.profiling import load_spans

    backends = {
        s.attributes.get("simai.backend")
        for s in load_spans(tmp_path)
        if s.name.startswith("datastore.")
    }
    assert backends == {"redis"}


@pytest.mark.slow
def test_insitu_on_node_local_and_a_process_pool(cli, tmp_path):
    values, _ = _run(
        cli,
        tmp_path,
        "insitu.yaml",
        "--backend",
        "node-local",
        "--executor",
        "process-pool",
        *SHORT_INSITU,
    )
    _check_insitu_pair(values["sim"], values["train"])


@pytest.mark.slow
def test_ensemble_feeds_one_trainer_from_every_member(cli, tmp_path):
    values, _ = _run(cli, tmp_path, "ensemble.yaml", *SHORT_ENSEMBLE)
    members = [values[f"member{i}"] for i in range(3)]
    assert all(m["killed"] and m["arrays_written"] >= 1 for m in members)
    assert values["train"]["arrays_read"] >= 3  # at least one field from each member


@pytest.mark.slow
def test_steering_generates_docking_tasks_from_inference(cli, tmp_path):
    values, _ = _run(cli, tmp_path, "steering.yaml", *SHORT_STEERING)
    steer = values["steer"]
    assert steer["tasks_generated"] == 6 and steer["arrays_read"] == 6
    result = cli.result_of(tmp_path)
    docks = [c for c in result["components"] if c["name"].startswith("dock-")]
    assert len(docks) == 6 and all(c["status"] == "succeeded" for c in docks)
    # Round 1's tasks were chosen from round 0's results: they start after round 0 ended.
    r0_end = max(c["end"] for c in docks if c["name"].startswith("dock-r0-"))
    assert all(c["start"] >= r0_end for c in docks if c["name"].startswith("dock-r1-"))


@pytest.mark.slow
def test_demo_command_runs_miniapp_one(cli, tmp_path):
    out = cli.run("demo", "--out", str(tmp_path), *SHORT_INSITU, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cli.statuses(cli.result_of(tmp_path)) == {"sim": "succeeded", "train": "succeeded"}


@pytest.mark.slow
def test_the_demo_opens_nothing_on_the_network(monkeypatch, tmp_path):
    # The quick-start promise: filesystem staging + thread pool, no socket bound or connected.
    import socket

    from simai.bench import Workflow
    from simai.bench.config import parse_workflow_dict
    from simai.bench.miniapps import config_path

    used = []
    for method in ("bind", "connect", "connect_ex", "listen"):
        original = getattr(socket.socket, method)

        def spy(self, *args, _original=original, _method=method):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                used.append((_method, args))
            return _original(self, *args)

        monkeypatch.setattr(socket.socket, method, spy)
    import yaml

    data = yaml.safe_load(config_path("insitu").read_text())
    data["components"][1]["args"]["iterations"] = 10
    result = Workflow.from_spec(parse_workflow_dict(data)).launch(timeout=120, run_dir=tmp_path)
    assert result.ok, [c.error for c in result.failed]
    assert used == []


@pytest.mark.slow
@pytest.mark.dragon
def test_insitu_switches_to_dragon_under_the_dragon_runtime(tmp_path):
    import json
    import os
    import shutil
    import subprocess
    import sys

    bindir = os.path.dirname(sys.executable)
    dragon = shutil.which("dragon") or os.path.join(bindir, "dragon")
    simai_exe = os.path.join(bindir, "simai")
    if not (os.path.exists(dragon) and os.path.exists(simai_exe)):
        pytest.skip(
            "needs the dragon launcher and the simai entry point (pip install 'simai-bench[dragon]')"
        )
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "200"}
    proc = subprocess.run(
        [
            dragon,
            simai_exe,
            "run",
            str(MINIAPPS / "insitu.yaml"),
            "--backend",
            "dragon",
            *SHORT_INSITU,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["ok"]
    values = {c["name"]: c["value"] for c in result["components"]}
    _check_insitu_pair(values["sim"], values["train"])
    from simai.profiling import load_spans

    backends = {
        s.attributes.get("simai.backend")
        for s in load_spans(tmp_path)
        if s.name.startswith("datastore.")
    }
    assert backends == {"dragon"}
