"""Faults, load and corruption: the data plane reports every failure and loses nothing."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from ds_workers import FAKE_PYDAOS, load_reader, load_values, load_writer

from simai.datastore import (
    BackendUnavailableError,
    CorruptValueError,
    DataStore,
    ServerManager,
    StagedDataTimeout,
    faults,
    server_registry,
)

pytestmark = pytest.mark.reliability


# ---------------------------------------------------------------- dead server
@pytest.mark.redis
def test_killed_redis_is_reported_fast_and_can_be_restarted():
    cfg = server_registry.create_config("redis", socket_timeout=3, connect_timeout=2)
    with ServerManager("victim", config=cfg) as sm:
        info = sm.get_server_info()
        ds = DataStore("sim", server_info=info)
        ds.stage_write("before", np.arange(10))
        sm.kill_server()  # SIGKILL: no goodbye to the clients
        t0 = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="unreachable"):
            ds.stage_write("during", np.arange(10))
        with pytest.raises(BackendUnavailableError):
            ds.stage_read("before", timeout=30)  # reported as an outage, not a 30 s wait
        assert (
            time.monotonic() - t0 < cfg.socket_timeout * 3
        )  # bounded by the client timeout, no hang
        assert not sm.is_running()
        sm.restart_server()
        assert sm.is_running() and sm.get_server_info() == info  # same address and password
        with pytest.raises(StagedDataTimeout):
            ds.stage_read("before", timeout=0)  # persistence is off: the old data is gone
        ds.stage_write("after", np.arange(3))  # the same client reconnects
        np.testing.assert_array_equal(ds.stage_read("after"), np.arange(3))


# ---------------------------------------------------------------- damaged files
def test_truncated_file_raises_naming_the_key(file_store):
    file_store.stage_write("field/T", np.random.default_rng(0).random(10_000))
    path = file_store.transport._path("field/T")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CorruptValueError, match=r"'field/T'.*length mismatch"):
        file_store.stage_read("field/T")


@pytest.mark.parametrize("where", ["header", "payload", "last"])
def test_corrupted_byte_raises_naming_the_key(file_store, where):
    file_store.stage_write("u", np.random.default_rng(1).random(10_000))
    path = file_store.transport._path("u")
    offset = {"header": 10, "payload": 5000, "last": os.path.getsize(path) - 1}[where]
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))  # a single flipped bit
    with pytest.raises(CorruptValueError, match="'u'"):
        file_store.stage_read("u")


# ---------------------------------------------------------------- disk full
@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs when we may mount one (root), else None (see the fallback test)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


_FSIZE_CHILD = r"""
import os, resource, signal, sys
import numpy as np
from simai.datastore import DataStore, ServerManager
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
with ServerManager("tiny", type="filesystem", server_address=sys.argv[1], nshards=2) as sm:
    ds = DataStore("w", server_info=sm.get_server_info())
    try:
        ds.stage_write("big", np.zeros(1 << 19))       # 4 MiB > 1 MiB limit
    except OSError as exc:
        print("RAISED", exc.errno, "big" in str(exc))
    print("VISIBLE", ds.poll_staged_data("big"), ds.keys())
    print("LEFTOVER", sum(len(fs) for _, _, fs in os.walk(sys.argv[1])))
    ds.stage_write("small", np.zeros(100))
    print("SMALL", ds.stage_read("small").shape)
"""


def test_disk_full_writer_raises_and_leaves_no_partial_value(tiny_disk, tmp_path):
    if tiny_disk is None:  # not root: a per-process file size limit has the same effect
        r = subprocess.run(
            [sys.executable, "-c", _FSIZE_CHILD, str(tmp_path / "s")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert "RAISED 27 True" in r.stdout and "VISIBLE False []" in r.stdout
        assert "SMALL (100,)" in r.stdout
        return
    with ServerManager("tiny", type="filesystem", server_address=str(tiny_disk), nshards=2) as sm:
        ds = DataStore("w", server_info=sm.get_server_info())
        ds.stage_write("fits", np.ones(1000))
        with pytest.raises(OSError, match="big") as info:
            ds.stage_write("big", np.zeros(1 << 19))  # 4 MiB on a 1 MiB file system
        assert info.value.errno == 28  # ENOSPC
        assert not ds.poll_staged_data("big") and ds.keys() == ["fits"]
        leftovers = [f for _, _, fs in os.walk(tiny_disk) for f in fs if f.startswith(".tmp")]
        assert leftovers == []  # the temp file was removed: the space is free again
        ds.stage_write("after", np.zeros(10_000))
        np.testing.assert_array_equal(ds.stage_read("fits"), np.ones(1000))


# ---------------------------------------------------------------- failure injection
def test_fault_injection_helper(tmp_path):
    with ServerManager("fi", type="filesystem", server_address=str(tmp_path / "s")) as sm:
        info = sm.get_server_info()
        down = DataStore("d", server_info=faults.inject(info, fail=1.0))
        with pytest.raises(BackendUnavailableError, match="injected"):
            down.stage_write("k", 1)
        lossy = DataStore("l", server_info=faults.inject(info, drop=1.0))
        lossy.stage_write("lost", 1)
        with pytest.raises(StagedDataTimeout):
            lossy.stage_read("lost", timeout=0.05)
        rotten = DataStore("r", server_info=faults.inject(info, corrupt=1.0, seed=3))
        rotten.stage_write("rot", np.arange(100))
        with pytest.raises(CorruptValueError, match="'rot'"):
            DataStore("reader", server_info=info).stage_read("rot")
        dying = DataStore("x", server_info=faults.inject(info, fail_after=2))
        dying.stage_write("a", 1)
        dying.stage_write("b", 2)
        with pytest.raises(BackendUnavailableError, match="down"):
            dying.stage_write("c", 3)
        dying.transport.revive()
        dying.stage_write("c", 3)
        slow = DataStore("s", server_info=faults.inject(info, delay=0.05))
        t0 = time.monotonic()
        slow.stage_write("slow", 1)
        assert time.monotonic() - t0 >= 0.05
        with pytest.raises(ValueError, match="Did you mean 'drop'"):
            faults.inject(info, dorp=0.1)
        with pytest.raises(ValueError, match="probability"):
            faults.inject(info, fail=2)


# ---------------------------------------------------------------- load
LOAD_BACKENDS = [
    "filesystem",
    "node-local",
    "daos-posix",
    "daos-kv-fake",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=pytest.mark.redis),
]
N_WRITERS, N_KEYS = 8, 60


@pytest.fixture(scope="module")
def pool():
    with mp.get_context("spawn").Pool(N_WRITERS + 2) as p:
        p.map(os.getpid, [], chunksize=1)
        yield p


@pytest.mark.slow
@pytest.mark.parametrize("server_info", LOAD_BACKENDS, indirect=True)
def test_load_8_writers_2_readers_nothing_lost_or_corrupt(server_info, pool):
    seed = 1234
    expected = {}
    for w in range(N_WRITERS):
        for key, a in load_values(w, N_KEYS, seed):
            expected[key] = hashlib.sha256(a.tobytes()).hexdigest()
    keys = list(expected)
    env = {"PYTHONPATH": FAKE_PYDAOS, "FAKE_PYDAOS_ROOT": os.environ.get("FAKE_PYDAOS_ROOT", "")}
    # one reader in write order, one in reverse: both race the writers
    readers = [
        pool.apply_async(load_reader, (server_info, order, expected, 90, env))
        for order in (keys, keys[::-1])
    ]
    writers = [
        pool.apply_async(load_writer, (server_info, w, N_KEYS, seed, env)) for w in range(N_WRITERS)
    ]
    written = {}
    for r in writers:
        written.update(r.get(timeout=120))
    assert written == expected
    for r in readers:
        stats = r.get(timeout=120)
        assert stats == {"ok": len(keys), "corrupt": 0, "missing": 0, "errors": []}
    assert len(DataStore("count", server_info=server_info).keys("load/")) == len(keys)
