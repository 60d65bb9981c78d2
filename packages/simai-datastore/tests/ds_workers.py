"""Functions run in child processes by the tests (importable by spawn)."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from simai.datastore import DataStore

FAKE_PYDAOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_pydaos")


def array_for(writer: int, i: int, max_elems: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(writer * 100_003 + i)
    n = int(rng.integers(0, max_elems))
    return rng.standard_normal(n).astype(np.float32)


def write_keys(info: dict, writer: int, n: int, prefix: str = "w") -> int:
    ds = DataStore(f"writer{writer}", server_info=info)
    for i in range(n):
        ds.stage_write(f"{prefix}{writer}-{i}", array_for(writer, i))
    return n


def overwrite_shared(info: dict, writer: int, n: int, elems: int) -> int:
    """Overwrite one key with arrays whose every element equals the version number."""
    ds = DataStore(f"writer{writer}", server_info=info)
    for i in range(n):
        v = writer * 1000 + i
        ds.stage_write("shared", np.full(elems + (v % 7) * 1024, v, dtype=np.int64))
    return n


def pickled_store_reads(ds: DataStore, key: str) -> bytes:
    """Receives a pickled DataStore: it must reconnect on its own."""
    return ds.stage_read(key, timeout=10).tobytes()


def load_values(writer: int, n: int, seed: int):
    """The (key, array) pairs writer ``writer`` stages: random sizes, 0 B to 300 KB."""
    rng = np.random.default_rng(seed + writer)
    for i in range(n):
        size = int(rng.choice([0, 1, 100, 4096, 65536, 300_000]))
        yield f"load/{writer}/{i}", rng.integers(0, 255, size=size, dtype=np.uint8)


def _prepare(env: dict | None) -> None:
    """Long-lived pool workers get per-test settings (e.g. the fake pydaos location)."""
    import sys

    for k, v in (env or {}).items():
        if k == "PYTHONPATH":
            if v not in sys.path:
                sys.path.insert(0, v)
        else:
            os.environ[k] = v


def load_writer(info: dict, writer: int, n: int, seed: int, env: dict | None = None) -> dict:
    """Writes n keys of random sizes; returns {key: sha256} of what it wrote."""
    _prepare(env)
    ds = DataStore(f"load{writer}", server_info=info)
    sums = {}
    for key, a in load_values(writer, n, seed):
        ds.stage_write(key, a)
        sums[key] = hashlib.sha256(a.tobytes()).hexdigest()
    return sums


def load_reader(
    info: dict, keys: list[str], expected: dict, deadline_s: float, env: dict | None = None
) -> dict:
    """Reads every key as it appears, verifying content; counts problems."""
    _prepare(env)
    ds = DataStore("load-reader", server_info=info)
    stats = {"ok": 0, "corrupt": 0, "missing": 0, "errors": []}
    end = time.monotonic() + deadline_s
    for key in keys:
        try:
            a = ds.stage_read(key, timeout=max(end - time.monotonic(), 0.1))
        except TimeoutError:
            stats["missing"] += 1
            continue
        except Exception as exc:  # a CorruptValueError would be a failure of ours
            stats["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
            continue
        if hashlib.sha256(a.tobytes()).hexdigest() == expected[key]:
            stats["ok"] += 1
        else:
            stats["corrupt"] += 1
    return stats


def pid() -> int:
    return os.getpid()


def write_as(ds: DataStore, key: str, value: int) -> None:
    """Receives a pickled DataStore and writes through it (as that store's name)."""
    ds.stage_write(key, value)
