"""Failures are named in the result and turn into a non-zero exit code of `simai run`."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.reliability

TASKS = """
    import os, time

    def rank_one_fails():
        if os.environ.get("PMI_RANK") == "1":
            raise RuntimeError("rank 1 diverged")
        time.sleep(0.2)

    def sleeper(s=2.0):
        time.sleep(s)

    def fine():
        return "ok"
"""


def _files(tmp_path, workflow: str):
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(workflow))
    return tmp_path / "wf.yaml"


@pytest.mark.mpi
def test_an_mpi_component_failing_on_one_rank_fails_the_run(cli, tmp_path):
    wf = _files(
        tmp_path,
        """
        components:
          - {name: mpi-solver, function: tasks.py:rank_one_fails, type: remote, ppn: 2}
          - {name: post, function: tasks.py:fine, dependencies: [mpi-solver]}
    """,
    )
    out = cli.run("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    result = cli.result_of(tmp_path / "run")
    assert cli.statuses(result) == {"mpi-solver": "failed", "post": "failed"}
    solver = result["components"][0]
    assert "rank 1 diverged" in solver["error"] and "mpiexec" in solver["error"]
    assert "mpi-solver" in result["components"][1]["error"]
    assert "failed: mpi-solver, post" in out.stdout


def test_a_component_over_its_timeout_fails_the_run(cli, tmp_path):
    wf = _files(
        tmp_path,
        """
        components:
          - {name: slow, function: tasks.py:sleeper, args: {s: 2.0}, timeout: 0.3}
          - {name: quick, function: tasks.py:fine}
    """,
    )
    out = cli.run("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    result = cli.result_of(tmp_path / "run")
    assert cli.statuses(result) == {"slow": "failed", "quick": "succeeded"}
    assert "timeout" in result["components"][0]["error"].lower()


@pytest.mark.parametrize("executor", ["thread-pool", "process-pool"])
def test_a_stuck_component_past_its_timeout_does_not_hold_the_command(cli, tmp_path, executor):
    # The function sleeps for 60 s; the command must end long before, reporting it failed.
    wf = _files(
        tmp_path,
        """
        components:
          - {name: stuck, function: tasks.py:sleeper, args: {s: 60.0}, timeout: 0.3}
    """,
    )
    out = cli.run(
        "run", str(wf), "--executor", executor, "--out", str(tmp_path / "run"), timeout=40
    )
    assert out.returncode == 1
    assert cli.statuses(cli.result_of(tmp_path / "run")) == {"stuck": "failed"}


def test_a_workflow_timeout_fails_what_is_unfinished(cli, tmp_path):
    wf = _files(
        tmp_path,
        """
        components:
          - {name: slow, function: tasks.py:sleeper, args: {s: 2.0}}
    """,
    )
    out = cli.run("run", str(wf), "--timeout", "0.3", "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    error = cli.result_of(tmp_path / "run")["components"][0]["error"]
    assert "timeout" in error and "0.3" in error


def test_a_server_that_cannot_start_is_a_reported_failure_not_a_traceback(cli, tmp_path):
    wf = _files(
        tmp_path,
        """
        server: {type: redis, options: {redis_server_exe: /nonexistent/redis-server}}
        components:
          - {name: a, function: tasks.py:fine}
    """,
    )
    out = cli.run("run", str(wf), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    result = cli.result_of(tmp_path / "run")
    assert "redis-server" in result["error"] and result["ok"] is False
    assert cli.statuses(result) == {"a": "failed"}
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
def test_a_trainer_that_cannot_start_ends_the_insitu_simulation_too(cli, tmp_path):
    # sample=0 makes the trainer's model invalid: it must fail, send the kill message,
    # and the simulation must stop waiting for it and fail naming the trainer.
    miniapp = cli.repo / "examples" / "miniapps" / "insitu.yaml"
    out = cli.run(
        "run", str(miniapp), "--set", "components.1.args.sample=0", "--out", str(tmp_path)
    )
    assert out.returncode == 1
    result = cli.result_of(tmp_path)
    assert cli.statuses(result) == {"sim": "failed", "train": "failed"}
    sim, train = result["components"]
    assert "input_dim" in train["error"]
    assert "ended early" in sim["error"] or "component 'train' failed" in sim["error"]


@pytest.mark.slow
def test_a_member_that_fails_at_once_does_not_leave_the_trainer_waiting(cli, tmp_path):
    # A wrong argument fails member0 before its code runs; the trainer must notice through
    # the orchestrator (not after its 60 s first-field timeout) and end the other members.
    miniapp = cli.repo / "examples" / "miniapps" / "ensemble.yaml"
    out = cli.run(
        "run",
        str(miniapp),
        "--set",
        "components.0.args.bogus=1",
        "--set",
        "components.3.args.first_field_timeout=240",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 1
    result = cli.result_of(tmp_path)
    by_name = {c["name"]: c for c in result["components"]}
    assert "bogus" in by_name["member0"]["error"]
    assert "component 'member0' failed" in by_name["train"]["error"]  # not "was not staged within"
