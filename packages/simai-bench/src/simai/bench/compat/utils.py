"""``SimAIBench.utils``: ``get_nodes`` and ``create_logger``."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path

__all__ = ["create_logger", "get_nodes"]

LOGLEVEL_ENV = "SIMAIBENCH_LOGLEVEL"


def get_nodes() -> list[str]:
    """The allocation's nodes (PBS ``PBS_NODEFILE``, then Slurm), short names, in order.

    Outside a batch job this is ``[socket.gethostname()]``, as in SimAI-Bench.
    """
    from simai.orchestrator.mpi import host_list

    nodes = []
    for host in host_list():
        try:
            ipaddress.ip_address(host)  # an address (a virtual cluster) keeps its dots
        except ValueError:
            host = host.split(".")[0]
        nodes.append(host)
    return list(dict.fromkeys(nodes)) or [socket.gethostname()]


def create_logger(logger_name: str) -> logging.Logger:
    """A logger writing ``logs/<logger_name>.log`` under the current directory.

    The level comes from ``$SIMAIBENCH_LOGLEVEL`` (``DEBUG``; anything else is ``INFO``),
    as in SimAI-Bench. The ``logs`` directory is created private (0700).
    """
    level = logging.DEBUG if os.environ.get(LOGLEVEL_ENV, "INFO") == "DEBUG" else logging.INFO
    logger = logging.getLogger(logger_name)
    logger.setLevel(level)
    if not logger.handlers:
        log_dir = Path.cwd() / "logs"
        log_dir.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(log_dir)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(f"{log_dir} is not a directory owned by this user")
        handler = logging.FileHandler(log_dir / f"{logger_name}.log", encoding="utf-8")
        handler.setLevel(level)
        handler.setFormatter(
            logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        )
        logger.addHandler(handler)
    return logger
