"""Which process samples a node, and how often: light enough for every process that
joins a run (the sampler itself, with the OpenTelemetry metrics SDK, loads only where
it runs)."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

__all__ = ["DEFAULT_INTERVAL", "ENV_SAMPLE", "claim_node", "resolve_interval"]

_HOST = socket.gethostname()

ENV_SAMPLE = "SIMAI_PROFILING_SAMPLE"
DEFAULT_INTERVAL = 0.5


def resolve_interval(interval: float | bool | None) -> float:
    """Seconds between samples; ``0`` means sampling is off.

    ``None`` reads ``SIMAI_PROFILING_SAMPLE`` (seconds, or ``0``/``off`` to disable) and
    falls back to 0.5 s; ``False`` turns sampling off, ``True`` is the default interval.
    """
    if interval is True:
        return DEFAULT_INTERVAL
    if interval is False:
        return 0.0
    if interval is None:
        raw = os.environ.get(ENV_SAMPLE, "").strip().lower()
        if not raw:
            return DEFAULT_INTERVAL
        if raw in ("off", "false", "no"):
            return 0.0
        try:
            interval = float(raw)
        except ValueError:
            raise ValueError(
                f"{ENV_SAMPLE}={raw!r}: expected seconds between samples (e.g. 0.5) "
                "or 0/off to disable sampling"
            ) from None
    interval = float(interval)
    if not math.isfinite(interval) or interval < 0:
        raise ValueError(f"sample interval must be >= 0 seconds (0: off), got {interval}")
    return interval


def claim_node(run_dir: Path, trace_id: str) -> bool:
    """True for the first process of the run (``trace_id``) on this host: it samples the host."""
    directory = run_dir / "metrics"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
    try:
        fd = os.open(directory / f"{_HOST}-{trace_id}.sampler", flags, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True
