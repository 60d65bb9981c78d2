"""Items 3 and 4: a real logger per component and rank; create_logger and get_nodes."""

from __future__ import annotations

import logging
import socket

import pytest

pytestmark = pytest.mark.compat


def test_simulation_logger_writes_into_the_run_directory(tmp_path, monkeypatch):
    from simai.bench.compat.simulation import Simulation

    monkeypatch.setenv("SIMAI_PROFILING_DIR", str(tmp_path))
    sims = [
        Simulation(name="sim", logging=True, log_level=logging.DEBUG, rank=r, size=2)
        for r in (0, 1)
    ]
    for sim in sims:
        sim.logger.debug(f"rank {sim.rank} step")
        sim.flush_logger()
    assert sims[0].logger is not sims[1].logger
    for r in (0, 1):
        text = (tmp_path / "logs" / f"sim.{r}.log").read_text()
        assert f"rank {r} step" in text and "DEBUG" in text
    assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o700


def test_logging_false_or_level_filters(tmp_path, monkeypatch):
    from simai.bench.compat.simulation import Simulation

    monkeypatch.setenv("SIMAI_PROFILING_DIR", str(tmp_path))
    assert Simulation(name="quiet", logging=False).logger is None
    sim = Simulation(name="info", logging=True, log_level=logging.INFO)
    sim.logger.debug("hidden")
    sim.logger.info("shown")
    sim.flush_logger()
    text = (tmp_path / "logs" / "info.0.log").read_text()
    assert "shown" in text and "hidden" not in text


def test_ai_logger(tmp_path, monkeypatch):
    from simai.bench.compat.training import AI

    monkeypatch.setenv("SIMAI_PROFILING_DIR", str(tmp_path))
    ai = AI("train_ai_0", num_hidden_layers=1, num_epochs=1, logging=True, data_size=2)
    ai.logger.info("AI initialized")
    ai.flush_logger()
    assert "AI initialized" in (tmp_path / "logs" / "train_ai_0.0.log").read_text()


def test_create_logger_writes_logs_dir_and_honours_level(tmp_path, monkeypatch):
    from simai.bench.compat.utils import create_logger

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIMAIBENCH_LOGLEVEL", "DEBUG")
    log = create_logger("docking_test_logger")
    log.debug("pose 7 scored")
    for h in log.handlers:
        h.flush()
    assert log.level == logging.DEBUG
    assert "pose 7 scored" in (tmp_path / "logs" / "docking_test_logger.log").read_text()


def test_get_nodes_from_the_allocation_and_when_empty(tmp_path, monkeypatch):
    from simai.bench.compat.utils import get_nodes

    nodefile = tmp_path / "nodes"
    nodefile.write_text("x1000c0s0b0n0.hsn.cm.aurora\nx1000c0s0b0n1.hsn.cm.aurora\n127.0.0.11\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    assert get_nodes() == ["x1000c0s0b0n0", "x1000c0s0b0n1", "127.0.0.11"]
    nodefile.write_text("")
    assert get_nodes() == [socket.gethostname()]
    monkeypatch.delenv("PBS_NODEFILE")
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    monkeypatch.delenv("SLURM_NODELIST", raising=False)
    assert get_nodes() == [socket.gethostname()]
