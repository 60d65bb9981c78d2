"""The on-disk span record and the loader that merges every process's file of a run.

A run directory holds ``spans/<host>-<pid>.jsonl``: one JSON object per finished span,
written by whichever process (parent, multiprocessing child, MPI rank) ended it. All
timestamps are epoch nanoseconds (``time.time_ns``), the clock base every process on a
node shares, so files merge without any offset correction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Sample", "SpanRecord", "load_samples", "load_spans"]

# The format of the files simai.profiling writes into a run directory (trace.json,
# summary.json), stored in each as ``schema_version``: bumped when a field is renamed,
# removed or changes meaning, so a reader can tell runs of different simai versions
# apart. Files written before versioning carry none.
SCHEMA_VERSION = 1


@dataclass
class SpanRecord:
    """One finished span, as merged from a run's files (plain data, JSON-friendly).

    ``trace_id``/``span_id``/``parent_id`` are lowercase hex strings as in W3C trace
    context; ``start_ns``/``end_ns`` are epoch nanoseconds.
    """

    name: str
    start_ns: int
    end_ns: int
    trace_id: str = "0" * 32
    span_id: str = "0" * 16
    parent_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = "UNSET"
    status_description: str | None = None
    host: str = ""
    pid: int = 0
    rank: int | None = None
    thread_id: int = 0
    thread_name: str = ""
    scope: str = ""
    service: str = ""

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def duration_s(self) -> float:
        return self.duration_ns / 1e9

    @property
    def component(self) -> str | None:
        value = self.attributes.get("simai.component")
        return None if value is None else str(value)

    @property
    def nbytes(self) -> int | None:
        value = self.attributes.get("simai.bytes")
        return None if value is None else int(value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpanRecord:
        known = cls.__dataclass_fields__
        unknown = set(data) - set(known)
        if missing := {"name", "start_ns", "end_ns"} - set(data):
            raise ValueError(f"span record lacks {sorted(missing)}: {dict(data)!r:.200}")
        record = cls(**{k: v for k, v in data.items() if k in known})
        if unknown:
            # Records written by a newer simai keep their extra fields as attributes
            # rather than failing the whole merge.
            record.attributes.update({f"record.{k}": data[k] for k in unknown})
        return record


def load_spans(source: str | os.PathLike[str], trace_id: str | None = None) -> list[SpanRecord]:
    """Load and merge the spans of a run, sorted by start time.

    ``source`` may be a run directory (its ``spans/`` folder is read), a folder of
    ``*.jsonl`` files, one ``.jsonl`` file, or a Chrome trace JSON written by
    :func:`simai.profiling.write_chrome_trace`. Duplicate spans (same trace and span
    id) are kept once. With ``trace_id``, only that trace's spans are returned.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no run directory or trace file at {path}")
    if path.is_dir():
        spans_dir = path / "spans" if (path / "spans").is_dir() else path
        files = sorted(spans_dir.glob("*.jsonl"))
        if not files and (path / "trace.json").is_file():
            return load_spans(path / "trace.json", trace_id)
        records: Iterable[SpanRecord] = (r for f in files for r in _read_jsonl(f))
    elif path.suffix == ".jsonl":
        records = _read_jsonl(path)
    else:
        records = _read_chrome_trace(path)

    seen: set[tuple[str, str]] = set()
    out = []
    for record in records:
        key = (record.trace_id, record.span_id)
        if key in seen and record.span_id != "0" * 16:
            continue
        seen.add(key)
        if trace_id is None or record.trace_id == trace_id:
            out.append(record)
    out.sort(key=lambda r: (r.start_ns, -r.end_ns))
    return out


def _read_jsonl(path: Path) -> Iterable[SpanRecord]:
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield SpanRecord.from_dict(json.loads(line))
            except json.JSONDecodeError as exc:
                # A process killed mid-write leaves a truncated last line; the rest of
                # the file (and of the run) is still good.
                if f.readline():
                    raise ValueError(f"{path}:{lineno}: not a span record: {exc}") from exc


def _read_chrome_trace(path: Path) -> Iterable[SpanRecord]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is neither a spans .jsonl file nor a JSON trace: {exc}") from exc
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError(f"{path} has no 'traceEvents' list: not a Chrome trace")
    for event in events:
        if event.get("ph") != "X":
            continue
        span = (event.get("args") or {}).get("simai.span")
        if span is None:
            raise ValueError(
                f"{path}: event {event.get('name')!r} carries no span record; only traces "
                "written by simai.profiling.write_chrome_trace can be read back"
            )
        yield SpanRecord.from_dict(span)


@dataclass
class Sample:
    """One measured value of a sampling plugin. ``time_ns`` is epoch nanoseconds (the
    spans' clock), set when the sampler collects it; ``unit`` as in OpenTelemetry
    (``%``, ``By``)."""

    name: str
    value: float
    attributes: dict[str, Any] = field(default_factory=dict)
    time_ns: int = 0
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_samples(source: str | os.PathLike[str]) -> list[Sample]:
    """Every sample of a run directory (``metrics/*.jsonl``), sorted by time."""
    path = Path(source)
    directory = path if path.name == "metrics" else path / "metrics"
    out = []
    if directory.is_dir():
        for f in sorted(directory.glob("*.jsonl")):
            with f.open() as fh:
                for line in fh:
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a truncated last line of a killed process
                    out.append(
                        Sample(
                            d["name"],
                            float(d["value"]),
                            d.get("attributes") or {},
                            int(d["time_ns"]),
                            d.get("unit", ""),
                        )
                    )
    out.sort(key=lambda s: s.time_ns)
    return out
