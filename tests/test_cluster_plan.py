"""`simai run --dry-run`, `Workflow.plan()` and `simai cluster virtual`, as a cluster user runs them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from simai.bench import Workflow
from simai.orchestrator import SystemConfig

_CORES = ",".join(map(str, range(104)))
_TILES = ",".join(f'"{g}.{t}"' for g in range(6) for t in range(2))
AURORA_NODE = f"system: {{name: aurora-node, cpus: [{_CORES}], gpus: [{_TILES}], launcher: pals}}"


def _nodefile(path, n):
    # PBS lists a node once per rank slot: names repeat.
    path.write_text("".join(f"x{4000 + i}c0s{i % 8}b0n0\n" * 2 for i in range(n)))
    return path


def _ensemble_yaml(path, members=200, extra=""):
    lines = ["version: 1", "name: ensemble", AURORA_NODE, "components:"]
    for i in range(members):
        lines.append(
            f"  - {{name: m{i}, command: ./nekrs --case m{i}, type: remote, ppn: 6, "
            "cpu_affinity: [1, 9, 17, 25, 33, 41], num_gpus_per_process: 2, "
            "env_vars: {REDIS_URL: 'redis://alice:pw-secret@127.0.0.1:6379'}}"
        )
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_dry_run_on_1000_nodes_places_200_six_rank_members_without_overlap(cli, tmp_path):
    nodefile = _nodefile(tmp_path / "nodefile", 1000)
    flow = _ensemble_yaml(
        tmp_path / "flow.yaml",
        extra="  - {name: train, command: python train.py, type: remote, nnodes: 4, ppn: 12,"
        " dependencies: [m0, m1]}\n",
    )
    proc = cli.run(
        "run",
        str(flow),
        "--dry-run",
        "--out",
        str(tmp_path / "out"),
        env={"PBS_NODEFILE": str(nodefile)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "201 components in 2 waves on 1000 nodes" in proc.stdout
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    known = {line.strip() for line in nodefile.read_text().splitlines()}
    taken: dict[int, set] = {}
    for c in plan["components"]:
        wave = taken.setdefault(c["wave"], set())
        assert set(c["nodes"]) <= known and len(c["nodes"]) == (4 if c["name"] == "train" else 1)
        mine = {(n, "core", x) for n in c["nodes"] for x in c["cores"]}
        mine |= {(n, "gpu", g) for n, g in ((n, g) for n in c["nodes"] for g in c["gpus"])}
        assert wave.isdisjoint(mine), f"{c['name']} shares a core or GPU in wave {c['wave']}"
        wave |= mine
        assert c["command"][:3] == ["mpiexec", "-n", str(c["nprocs"])]
        assert "--hosts" in c["command"] and "pw-secret" not in c["command_line"]
    m0 = plan["components"][0]
    assert m0["cores"] == [1, 9, 17, 25, 33, 41] and len(m0["gpus"]) == 12
    assert m0["gpus_per_rank"][1] == ["1.0", "1.1"]
    assert "--cpu-bind list:1:9:17:25:33:41 --envlist REDIS_URL," in m0["command_line"]
    train = next(c for c in plan["components"] if c["name"] == "train")
    assert train["wave"] == 1  # after its dependencies


def test_dry_run_names_what_is_missing_and_exits_2(cli, tmp_path):
    nodefile = _nodefile(tmp_path / "nodefile", 4)
    flow = _ensemble_yaml(
        tmp_path / "flow.yaml",
        members=1,
        extra="  - {name: wide, command: a.out, type: remote, nnodes: 5}\n",
    )
    proc = cli.run(
        "run", str(flow), "--dry-run", "--out", str(tmp_path), env={"PBS_NODEFILE": str(nodefile)}
    )
    assert proc.returncode == 2
    assert "'wide' asks for 5 nodes (nnodes)" in proc.stderr and "has 4" in proc.stderr


def test_workflow_plan_from_python_with_a_slurm_nodelist(monkeypatch, tmp_path):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    monkeypatch.setenv("SLURM_JOB_NODELIST", "nid[001-002]")
    wf = Workflow(system_config=SystemConfig(cpus=[0, 1, 2, 3], launcher="srun"))
    wf.register_component("sim", "./sim", type="remote", nnodes=2, ppn=2, cpu_affinity=[0, 1])
    wf.register_component("train", "./train", type="remote", nnodes=2, ppn=2, cpu_affinity=[2, 3])
    wf.register_component("post", lambda: None, dependencies=["sim"])
    plan = wf.plan(tmp_path / "plan.json")
    by_name = {c["name"]: c for c in plan["components"]}
    assert by_name["sim"]["nodes"] == by_name["train"]["nodes"] == ["nid001", "nid002"]
    assert by_name["sim"]["wave"] == by_name["train"]["wave"] == 0  # co-located
    assert by_name["train"]["command_line"] == (
        "srun --nodes=2 --ntasks=4 --ntasks-per-node=2 --nodelist=nid001,nid002 "
        "--cpu-bind=map_cpu:2,3 --export=ALL ./train"
    )
    assert by_name["post"]["placed_by"] == "executor"
    assert json.loads((tmp_path / "plan.json").read_text())["components"]


def test_simai_cluster_virtual_prints_exports_a_job_script_can_eval(cli, tmp_path):
    proc = cli.run("cluster", "virtual", "3", "--dir", str(tmp_path / "vc"))
    assert proc.returncode == 0, proc.stderr
    env = dict(os.environ)
    out = subprocess.run(
        ["bash", "-c", proc.stdout + '\ncat "$PBS_NODEFILE"; echo "$HYDRA_LAUNCHER"'],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    assert out == ["127.0.0.11", "127.0.0.12", "127.0.0.13", "fork"]
    assert cli.run("cluster", "virtual", "0").returncode == 2


@pytest.mark.mpi
def test_virtual_cluster_run_lands_ranks_on_their_nodes(cli, tmp_path):
    env = {
        k: v
        for k, v in (
            line.removeprefix("export ").split("=", 1)
            for line in cli.run("cluster", "virtual", "2", "--dir", str(tmp_path / "vc"))
            .stdout.strip()
            .splitlines()
        )
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "version: 1\nname: vc\nsystem: {ncpus: 1, pin_cpus: false}\ncomponents:\n"
        "  - {name: where, command: printenv PMI_HOSTNAME, type: remote, nnodes: 2}\n"
    )
    proc = cli.run("run", str(flow), "--out", str(tmp_path / "run"), env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    (comp,) = result["components"]
    assert sorted(comp["value"].split()) == ["127.0.0.11", "127.0.0.12"]
