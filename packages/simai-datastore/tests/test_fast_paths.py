"""The fast paths keep every guarantee: streamed checksums, direct Redis connections, key checks."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest
import xxhash

from simai.datastore import CorruptValueError, DataStore, ServerManager, server_registry
from simai.datastore._keys import InvalidKeyError, validate_key
from simai.datastore.serialize import PendingFrame, decode, encode, join_parts


# ---------------------------------------------------------------- streamed checksum
def test_deferred_frame_seals_to_the_same_bytes_as_an_eager_one():
    a = np.random.default_rng(0).random((700, 301))  # ~1.6 MiB, not a multiple of any chunk
    eager = encode(a)
    pending = encode(a, defer_checksum=True)
    assert isinstance(pending, PendingFrame) and not isinstance(eager, PendingFrame)
    assert pending[0] != eager[0]  # the checksum is still open
    pending.hasher.update(pending[1])
    assert pending.sealed_head() == eager[0]
    np.testing.assert_array_equal(decode(join_parts([pending.sealed_head(), pending[1]])), a)


def test_small_values_are_never_deferred():
    assert not isinstance(encode(np.zeros(10), defer_checksum=True), PendingFrame)
    assert not isinstance(encode(b"x" * (2 << 20), defer_checksum=True), PendingFrame)


def test_large_arrays_written_with_streamed_checksum_round_trip(file_store):
    rng = np.random.default_rng(2)
    for i in range(3):  # replacing a large value: node-local reuses the old file
        a = rng.random((1003, 517)).astype(np.float32)
        a = np.asfortranarray(a) if i == 1 else a
        file_store.stage_write("big", a)
        b = file_store.stage_read("big", timeout=0)
        np.testing.assert_array_equal(b, a)
        assert b.flags.f_contiguous == (i == 1)
    out = np.empty_like(a)
    assert file_store.stage_read("big", out=out) is out
    np.testing.assert_array_equal(out, a)


def test_only_a_transport_that_declares_it_gets_a_pending_frame(file_store, monkeypatch):
    from simai.datastore.faults import FaultyTransport
    from simai.datastore.protocols import ChecksumStreamingTransport, FileReusingTransport

    assert isinstance(file_store.transport, ChecksumStreamingTransport)
    assert isinstance(file_store.transport, FileReusingTransport)
    wrapped = FaultyTransport(file_store.transport)  # declares neither
    assert not isinstance(wrapped, (ChecksumStreamingTransport, FileReusingTransport))
    handed = []
    real_put = file_store.transport.put
    monkeypatch.setattr(
        file_store.transport, "put", lambda k, v, o="": handed.append(type(v)) or real_put(k, v, o)
    )
    a = np.arange(300_000, dtype=np.float64)  # 2.4 MiB: deferred where declared
    file_store.stage_write("direct", a)
    DataStore("w", transport=wrapped).stage_write("wrapped", a)
    assert handed == [PendingFrame, list]
    np.testing.assert_array_equal(file_store.stage_read("wrapped", timeout=0), a)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_streamed_checksum_still_catches_a_flipped_bit(file_store, where):
    a = np.random.default_rng(3).random(400_000)  # 3.2 MiB
    file_store.stage_write("field/u", a)
    path = file_store.transport._path("field/u")
    size = os.path.getsize(path)
    offset = {"first": size - a.nbytes, "middle": size // 2, "last": size - 1}[where]
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))
    with pytest.raises(CorruptValueError, match=r"'field/u'.*checksum"):
        file_store.stage_read("field/u", timeout=0)


def test_streamed_file_checksum_covers_the_whole_payload(file_store):
    a = np.arange(300_000, dtype=np.int64)
    file_store.stage_write("k", a)
    with open(file_store.transport._path("k"), "rb") as f:
        data = f.read()
    meta_len = int.from_bytes(data[8:12], "little")
    stored = int.from_bytes(data[20:28], "little")
    h = xxhash.xxh3_64(data[:20])
    h.update(data[28 : 28 + meta_len])  # the zero pad after the meta is not hashed
    h.update(data[len(data) - a.nbytes :])
    assert h.intdigest() == stored


# ---------------------------------------------------------------- redis direct connection
def _child_writes(info, key):
    ds = DataStore("child", server_info=info)
    ds.stage_write(key, np.full(100, 7.0))


@pytest.mark.redis
def test_redis_survives_the_server_dropping_its_connections(redis_standalone):
    import redis

    ds = DataStore("c", server_info=redis_standalone)
    ds.stage_write("drop/a", np.arange(5))
    np.testing.assert_array_equal(ds.stage_read("drop/a"), np.arange(5))
    cfg = redis_standalone["config"]
    host, port = cfg["server_address"].rsplit(":", 1)
    admin = redis.Redis(host=host, port=int(port), password=cfg["password"])
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    ds.stage_write("drop/b", np.arange(6))  # the dead connection is replaced, nothing lost
    np.testing.assert_array_equal(ds.stage_read("drop/b"), np.arange(6))
    admin.client_kill_filter(_type="normal", skipme=True)
    np.testing.assert_array_equal(ds.stage_read("drop/a"), np.arange(5))
    ds.clean_staged_data("drop/a")
    ds.clean_staged_data("drop/b")
    admin.close()


@pytest.mark.redis
def test_redis_scripts_called_by_sha_survive_a_flushed_script_cache(redis_standalone):
    import redis

    cfg = redis_standalone["config"]
    host, port = cfg["server_address"].rsplit(":", 1)
    admin = redis.Redis(host=host, port=int(port), password=cfg["password"])
    ds = DataStore("sha", server_info=redis_standalone)
    ds.stage_write("sha/k", 1)  # the scripts are loaded
    admin.script_flush()  # what a restarted or failed-over server has forgotten
    ds.stage_write("sha/k", 2)
    assert ds.stage_read("sha/k", timeout=0) == 2
    admin.script_flush()
    ds.clean()
    assert not ds.poll_staged_data("sha/k")
    admin.close()


@pytest.mark.redis
def test_redis_direct_connections_are_per_thread_and_per_process(redis_standalone):
    ds = DataStore("t", server_info=redis_standalone)
    ds.stage_write("fork/parent", np.arange(3))  # the parent's connection exists before fork
    p = mp.get_context("fork").Process(target=_child_writes, args=(redis_standalone, "fork/child"))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    np.testing.assert_array_equal(ds.stage_read("fork/child", timeout=5), np.full(100, 7.0))

    errors = []

    def worker(i):
        try:
            for j in range(50):
                v = np.full(64, i * 1000 + j, dtype=np.int32)
                ds.stage_write(f"thr/{i}", v)
                np.testing.assert_array_equal(ds.stage_read(f"thr/{i}", timeout=5), v)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    ds.clean()


# ---------------------------------------------------------------- key fast path
@pytest.mark.parametrize(
    "key",
    ["", "a\x00b", "x" * 1025, "é" * 600, "\ud800"],
    ids=["empty", "nul", "too-long-ascii", "too-long-utf8", "surrogate"],
)
def test_key_checks_still_refuse_bad_keys(key):
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_key_fast_path_accepts_what_the_slow_path_does():
    for key in ("a", "x" * 1024, "../../etc/passwd", "é" * 512, "field/T 0"):
        assert validate_key(key) == key
    with pytest.raises(InvalidKeyError):
        validate_key(b"bytes")


# ---------------------------------------------------------------- small values swapped in place
def _fs_store(tmp_path, **opts):
    cfg = server_registry.create_config(
        "filesystem", server_address=str(tmp_path / "stage"), nshards=2, **opts
    )
    return ServerManager("swap", config=cfg)


def test_small_values_swap_with_a_spare_and_round_trip(tmp_path):
    with _fs_store(tmp_path, swap_small=True) as sm:
        ds = DataStore("s", server_info=sm.get_server_info())
        path = ds.transport._path("k")
        spare = os.path.join(os.path.dirname(path), ".spare-" + os.path.basename(path))
        for i, n in enumerate([10, 300, 3, 1000, 0]):  # grow and shrink through the spare
            v = np.arange(n, dtype=np.float64) + i
            ds.stage_write("k", v)
            np.testing.assert_array_equal(ds.stage_read("k", timeout=0), v)
            assert os.path.exists(spare) == (i > 0)
        assert ds.keys() == ["k"]  # the spare is not a key
        ds.clean_staged_data("k")
        assert not os.path.exists(path) and not os.path.exists(spare)


def test_a_file_a_reader_still_has_open_is_never_rewritten(tmp_path):
    with _fs_store(tmp_path, swap_small=True) as sm:
        ds = DataStore("s", server_info=sm.get_server_info())
        ds.stage_write("k", np.full(100, 1.0))
        fd = os.open(ds.transport._path("k"), os.O_RDONLY)  # a reader mid-read of version 1
        try:
            for i in (2.0, 3.0, 4.0):  # version 1 becomes the spare, then is claimed
                ds.stage_write("k", np.full(100, i))
                np.testing.assert_array_equal(ds.stage_read("k", timeout=0), np.full(100, i))
            held = os.pread(fd, 1 << 20, 0)
        finally:
            os.close(fd)
        np.testing.assert_array_equal(decode(held, "k"), np.full(100, 1.0))


def _swap_writer(info, w, n):
    ds = DataStore(f"w{w}", server_info=info)
    for i in range(n):
        ds.stage_write("shared", np.full(64, w * 1000 + i, dtype=np.int64))


def test_concurrent_swapping_writers_and_a_reader_see_whole_values(tmp_path):
    with _fs_store(tmp_path, swap_small=True) as sm:
        info = sm.get_server_info()
        ds = DataStore("r", server_info=info)
        ds.stage_write("shared", np.full(64, -1, dtype=np.int64))
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_swap_writer, args=(info, w, 300)) for w in range(2)]
        for p in procs:
            p.start()
        seen = 0
        while any(p.is_alive() for p in procs) and seen < 20_000:
            v = ds.stage_read("shared", timeout=5)  # never torn: checksum and one value
            assert (v == v[0]).all()
            seen += 1
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        last = ds.stage_read("shared")
        assert last[0] in (299, 1299)


def test_swap_is_on_for_journaling_file_systems_only(tmp_path):
    from simai.datastore.backends.filesystem import _fs_type

    with _fs_store(tmp_path) as sm:
        auto = DataStore("s", server_info=sm.get_server_info()).transport
        assert auto._swap == (_fs_type(str(tmp_path)) in ("ext4", "xfs", "btrfs"))
    with _fs_store(tmp_path, swap_small=False) as sm:
        ds = DataStore("s", server_info=sm.get_server_info())
        for i in range(3):
            ds.stage_write("k", np.arange(5) + i)
        d = os.path.dirname(ds.transport._path("k"))
        assert not [n for n in os.listdir(d) if n.startswith(".")]
    with ServerManager("nl", type="node-local") as sm:  # tmpfs: creating a file is cheaper
        assert not DataStore("s", server_info=sm.get_server_info()).transport._swap


def test_reader_retries_once_when_a_reused_file_changed_under_it(tmp_path, monkeypatch):
    with _fs_store(tmp_path, swap_small=True) as sm:
        ds = DataStore("s", server_info=sm.get_server_info())
        ds.stage_write("k", np.arange(50))
        t = ds.transport
        real_get = t.get
        calls = []

        def racing_get(key):
            raw = bytearray(real_get(key))
            if not calls:  # the first read caught the file mid-rewrite
                raw[-1] ^= 0xFF
            calls.append(key)
            return raw

        monkeypatch.setattr(t, "get", racing_get)
        np.testing.assert_array_equal(ds.stage_read("k", timeout=0), np.arange(50))
        assert len(calls) == 2
        monkeypatch.setattr(t, "get", lambda key: b"SIMA" + bytes(100))  # damaged for good
        with pytest.raises(CorruptValueError, match="'k'"):
            ds.stage_read("k", timeout=0)
