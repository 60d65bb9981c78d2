"""The contract every datastore backend honours, run against each of them for real.

Parametrised through the ``server_info`` fixture (conftest.py): filesystem,
node-local, redis (standalone, 2 sharded servers, a 3-master cluster), daos posix
and daos kv (fake pydaos). Dragon runs the same checks in its runtime (test_dragon.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ds_workers import array_for, overwrite_shared, pickled_store_reads, write_keys

from simai.datastore import (
    CorruptValueError,
    DataStore,
    InvalidKeyError,
    LockingTransport,
    MessagingTransport,
    PickleNotAllowedError,
    StagedDataTimeout,
    Transport,
    UnsupportedOperationError,
)
from simai.datastore.serialize import encode

DTYPES = (
    [np.dtype(c) for c in "?bhilqBHILQefdgFDG"]
    + [np.dtype(s) for s in ("S7", "U5", "V6", "M8[ns]", "m8[s]", ">i4", ">f8", "<c8")]
    + [np.dtype([("a", "<i4"), ("b", ">f8", (2,)), ("c", "S3")])]
)
SHAPES = [(), (0,), (3, 0, 2), (17,), (4, 5), (2, 3, 4)]


def _random_array(dtype: np.dtype, shape: tuple, seed: int, order: str = "C") -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    raw = np.random.default_rng(seed).integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    a = raw.view(dtype).reshape(shape)
    return np.asfortranarray(a) if order == "F" else a


def _same_array(a: np.ndarray, b: np.ndarray) -> None:
    assert type(b) is np.ndarray
    assert b.dtype == a.dtype and b.shape == a.shape
    assert (
        np.ascontiguousarray(b).tobytes() == np.ascontiguousarray(a).tobytes()
    )  # bit-exact, NaN payloads too


@pytest.fixture
def ds(server_info):
    store = DataStore("contract", server_info=server_info)
    yield store
    store.close()


def test_backend_is_a_transport(ds):
    assert isinstance(ds.transport, Transport)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_arrays_round_trip_bit_exact_every_dtype(ds, dtype):
    for i, shape in enumerate(SHAPES):
        for order in ("C", "F"):
            a = _random_array(dtype, shape, seed=i, order=order)
            ds.stage_write("arr", a)
            b = ds.stage_read("arr", timeout=5)
            _same_array(a, b)
            assert b.flags.writeable
            if order == "F" and a.ndim > 1 and a.size:
                assert b.flags.f_contiguous


def test_non_contiguous_and_large_arrays(ds):
    a = np.arange(240, dtype=np.float64).reshape(12, 20)[::2, 3:17:3]
    ds.stage_write("view", a)
    _same_array(a, ds.stage_read("view"))
    big = _random_array(np.dtype("f4"), (700, 300), seed=5)  # 840 KB: chunked on the sharded redis
    ds.stage_write("big", big)
    _same_array(big, ds.stage_read("big"))


def test_basic_types_round_trip_without_pickle(ds):
    values = {
        "s": "héllo ✓",
        "b": b"\x00\xffraw",
        "i": -(2**70),
        "f": float("inf"),
        "t": True,
        "n": None,
        "l": [1, 2.5, "x", None, [b"y"], (1, 2)],
        "d": {"a": 1, 2: "two", "arr": np.arange(3, dtype=np.int16), "c": 1 - 2j},
        "e": "",
        "np": np.float32(1.5),
    }
    for k, v in values.items():
        ds.stage_write(k, v)
    for k, v in values.items():
        got = ds.stage_read(k)
        if k == "d":
            assert got["a"] == 1 and got[2] == "two" and got["c"] == 1 - 2j
            _same_array(v["arr"], got["arr"])
        else:
            assert got == v and type(got) is type(v)


def test_overwrite_replaces_whole_value(ds):
    ds.stage_write("k", np.ones(100_000))
    ds.stage_write("k", "short")
    assert ds.stage_read("k") == "short"


def test_missing_keys_and_timeouts(ds):
    assert ds.poll_staged_data("nope") is False
    ds.clean_staged_data("nope")  # deleting a missing key is fine
    t0 = time.monotonic()
    with pytest.raises(StagedDataTimeout) as info:
        ds.stage_read("nope", timeout=0.2)
    assert time.monotonic() - t0 >= 0.2
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, KeyError)
    assert "nope" in str(info.value)
    with pytest.raises(StagedDataTimeout):
        ds.stage_read("nope", timeout=0)
    ds.stage_write("here", 1)
    with pytest.raises(StagedDataTimeout, match="nope"):
        ds.stage_read_many(["here", "nope"], timeout=0.1)


def test_stage_read_waits_for_a_late_writer(ds, server_info):
    writer = DataStore("late", server_info=server_info)
    timer = threading.Timer(0.15, writer.stage_write, args=("late-key", np.arange(5)))
    timer.start()
    try:
        np.testing.assert_array_equal(ds.stage_read("late-key", timeout=10), np.arange(5))
    finally:
        timer.cancel()


def test_poll_clean_keys_and_clean(ds):
    ds.stage_write_many({f"batch/{i}": np.full(i, i) for i in range(10)})
    got = ds.stage_read_many([f"batch/{i}" for i in range(10)])
    for i, a in enumerate(got):
        np.testing.assert_array_equal(a, np.full(i, i))
    assert ds.poll_staged_data("batch/3")
    ds.clean_staged_data("batch/3")
    assert not ds.poll_staged_data("batch/3")
    assert ds.keys("batch/") == sorted(f"batch/{i}" for i in range(10) if i != 3)
    ds.clean()
    assert ds.keys() == []


KEYS_STORED_SAFELY = [
    "../../x",
    "/",
    "/etc/passwd",
    "a/b/../c",
    "..",
    ".",
    ".hidden",
    "=abc",
    "x~",
    "ключ-ö-🔑",
    "sp ace\ttab\nnl",
    "k" * 1024,
    "é" * 512,
]


def test_hostile_keys_are_encoded_consistently(ds, server_info, tmp_path):
    before = set(os.listdir(tmp_path.parent))
    for i, key in enumerate(KEYS_STORED_SAFELY):
        ds.stage_write(key, i)
    for i, key in enumerate(KEYS_STORED_SAFELY):
        assert ds.stage_read(key, timeout=1) == i
    assert set(ds.keys()) == set(KEYS_STORED_SAFELY)
    # nothing escaped: no file appeared beside the test directory, none at the targets
    assert set(os.listdir(tmp_path.parent)) == before
    root = server_info["config"].get("server_address")
    if root and os.path.isdir(root):
        assert not os.path.exists(os.path.join(root, "x"))
        for dirpath, _dirs, _files in os.walk(root):
            assert os.path.realpath(dirpath).startswith(os.path.realpath(root))


@pytest.mark.parametrize(
    "bad", ["", "nul\x00byte", "k" * 1025, "é" * 513, 42, None, b"bytes", "\udc80"]
)
def test_invalid_keys_are_rejected_everywhere(ds, bad):
    with pytest.raises(InvalidKeyError):
        ds.stage_write(bad, 1)
    with pytest.raises(InvalidKeyError):
        ds.stage_read(bad, timeout=0)
    with pytest.raises(InvalidKeyError):
        ds.transport.put(bad, [b"x"])  # the transport checks too, not only DataStore


class _Planted:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_pickle_is_never_unpickled(ds, server_info, tmp_path):
    marker = tmp_path / "pwned"
    # 1) a raw pickle written straight into the store by someone else
    ds.transport.put("raw-pickle", [pickle.dumps(_Planted(str(marker)))])
    with pytest.raises(CorruptValueError, match="raw-pickle"):
        ds.stage_read("raw-pickle", timeout=1)
    # 2) a well-formed simai frame that carries a pickle
    ds.transport.put("framed-pickle", encode(_Planted(str(marker)), allow_pickle=True))
    with pytest.raises(PickleNotAllowedError, match="framed-pickle"):
        ds.stage_read("framed-pickle", timeout=1)
    assert not marker.exists()
    # writing a non-basic object needs allow_pickle on the writer too
    with pytest.raises(PickleNotAllowedError):
        ds.stage_write("obj", {1, 2})
    trusting = DataStore("trusting", server_info=server_info, allow_pickle=True)
    trusting.stage_write("set", {1, 2})
    assert trusting.stage_read("set") == {1, 2}
    with pytest.raises(PickleNotAllowedError):
        ds.stage_read("set")


def test_datastore_pickles_and_reconnects_in_a_child(ds):
    a = array_for(7, 7)
    ds.stage_write("from-parent", a)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._transport is None  # lazy: no connection until used
    assert clone.stage_read("from-parent").tobytes() == a.tobytes()
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(pickled_store_reads, (ds, "from-parent")) == a.tobytes()


def test_concurrent_writers_from_several_processes(ds, server_info):
    nproc, nkeys = 3, 15
    with mp.get_context("spawn").Pool(nproc) as pool:
        results = [pool.apply_async(write_keys, (server_info, w, nkeys)) for w in range(nproc)]
        assert [r.get(timeout=120) for r in results] == [nkeys] * nproc
    for w in range(nproc):
        for i in range(nkeys):
            assert ds.stage_read(f"w{w}-{i}", timeout=5).tobytes() == array_for(w, i).tobytes()
    assert len(ds.keys("w")) == nproc * nkeys


def test_arrays_already_read_never_change(ds):
    """Overwriting, deleting and re-filling a key leaves arrays a reader holds intact
    (node-local maps files and recycles large ones: this is what keeps that safe)."""
    n = 300_000  # 2.4 MB: large enough to be recycled
    ds.stage_write("held", np.full(n, 1.0))
    held = ds.stage_read("held")
    for v in (2.0, 3.0, 4.0):
        ds.stage_write("held", np.full(n, v))
        np.testing.assert_array_equal(ds.stage_read("held"), np.full(n, v))
    ds.clean_staged_data("held")
    for i in range(4):
        ds.stage_write(f"refill{i}", np.full(n, 5.0 + i))
    assert (held == 1.0).all()
    held[:] = 7.0  # and it is the reader's own, writable memory
    del held
    for i in range(4):  # with the reader gone its memory may be reused: still correct
        ds.stage_write(f"refill{i}", np.full(n, 9.0 + i))
        np.testing.assert_array_equal(ds.stage_read(f"refill{i}"), np.full(n, 9.0 + i))


def test_writes_are_atomic_under_concurrent_overwrite(ds, server_info):
    """Readers never see a partial or mixed value while two processes overwrite a key."""
    elems = 140_000  # 1.1 MB: chunked on redis, recycled on node-local
    ds.stage_write("shared", np.full(elems, -1, dtype=np.int64))
    with mp.get_context("spawn").Pool(2) as pool:
        results = [pool.apply_async(overwrite_shared, (server_info, w, 25, elems)) for w in (1, 2)]
        seen = 0
        while not all(r.ready() for r in results):
            a = ds.stage_read("shared", timeout=5)
            v = int(a[0])
            assert (a == v).all(), "a read mixed two versions"
            assert a.size == (elems if v == -1 else elems + (v % 7) * 1024), "a read was partial"
            seen += 1
        assert [r.get() for r in results] == [25, 25]
    assert seen > 0


def test_messaging_capability(ds, server_info):
    sim = DataStore("sim", server_info=server_info)
    trainer = DataStore("trainer", server_info=server_info)
    if not isinstance(ds.transport, MessagingTransport):
        with pytest.raises(UnsupportedOperationError):
            sim.send("x", ["trainer"])
        return
    sim.connect(trainer)
    trainer.connect("sim")
    for i in range(5):
        sim.send(np.full(3, i))
    for i in range(5):
        np.testing.assert_array_equal(trainer.receive(timeout=5)["sim"], np.full(3, i))
    with pytest.raises(StagedDataTimeout):
        trainer.receive(timeout=0.1)


def test_lock_capability(ds):
    if not isinstance(ds.transport, LockingTransport):
        with pytest.raises(UnsupportedOperationError):
            ds.acquire_lock("l")
        return
    held, release = threading.Event(), threading.Event()

    def hold():
        with ds.acquire_lock("l", timeout=5):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        other = DataStore("other", server_info=ds.server_info)
        with pytest.raises(TimeoutError), other.acquire_lock("l", timeout=0.1):
            pass
    finally:
        release.set()
        t.join(10)
    with other.acquire_lock("l", timeout=5):
        pass


def test_clean_removes_only_what_stores_of_this_name_wrote(server_info):
    from ds_workers import write_as

    alpha = DataStore("alpha", server_info=server_info)
    beta = DataStore("beta", server_info=server_info)
    alpha.stage_write("a-small", 1)
    alpha.stage_write("a-large", np.ones(300_000))  # chunked on redis
    alpha.stage_write_many({"a-many": 2})
    beta.stage_write("b-own", 3)
    alpha.stage_write("taken-over", 4)
    beta.stage_write("taken-over", 5)  # beta wrote it too: alpha's clean() leaves it
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:  # ownership travels with a pickled store
        pool.apply(write_as, (alpha, "a-child", 6))
    messaging = isinstance(alpha.transport, MessagingTransport)
    if messaging:
        beta.send("for alpha", ["alpha"])
        alpha.send("for beta", ["beta"])
    alpha.clean()
    mine = {"a-small", "a-large", "a-many", "a-child", "b-own", "taken-over"}
    assert mine & set(alpha.keys()) == {"b-own", "taken-over"}
    assert beta.stage_read("taken-over", timeout=0) == 5
    if messaging:
        with pytest.raises(StagedDataTimeout):
            alpha.receive(["beta"], timeout=0)  # messages addressed to alpha went too
        assert beta.receive(["alpha"], timeout=5) == {"alpha": "for beta"}
    beta.clean()
    assert mine & set(beta.keys()) == set()


def test_a_key_written_by_several_stores_goes_with_the_last_of_their_cleans(server_info):
    alpha = DataStore("alpha", server_info=server_info)
    beta = DataStore("beta", server_info=server_info)
    alpha.stage_write("shared", 1)
    big = np.ones(300_000)  # chunked on redis
    beta.stage_write("shared", big)
    beta.clean()  # beta wrote it last, but alpha wrote it too: it stays
    np.testing.assert_array_equal(alpha.stage_read("shared", timeout=0), big)
    beta.stage_write("shared", 2)
    alpha.stage_write("shared", 3)  # written again: still one record per writer
    alpha.clean()
    assert beta.stage_read("shared", timeout=0) == 3
    beta.clean()
    assert alpha.keys(prefix="shared") == []


def test_long_queue_and_lock_names_work_everywhere(server_info):
    sender = DataStore("s" * 150, server_info=server_info)
    target = DataStore("t" * 120 + "é" * 10, server_info=server_info)
    t = sender.transport
    if isinstance(t, MessagingTransport):
        sender.send(np.arange(3), [target])
        np.testing.assert_array_equal(
            target.receive([sender], timeout=5)[sender.name], np.arange(3)
        )
        with pytest.raises(InvalidKeyError, match="1024"):
            DataStore("x" * 1020, server_info=server_info).send(1, ["y" * 10])
    if isinstance(t, LockingTransport):
        for name in ("l" * 300, "é" * 120, "é" * 512):  # 512 x 2 bytes: at the limit
            with sender.acquire_lock(name, timeout=5):
                pass
        with pytest.raises(InvalidKeyError, match="1024"):
            sender.acquire_lock("é" * 513, timeout=5)
    sender.stage_write("k" * 1024, 1)
    assert sender.stage_read("k" * 1024, timeout=0) == 1
    with pytest.raises(InvalidKeyError, match="1024"):
        sender.stage_write("k" * 1025, 1)


def test_a_wrong_out_array_is_a_caller_error_not_corruption(ds):
    ds.stage_write("a", np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match=r"float64.*float32"):
        ds.stage_read("a", out=np.empty((3, 4), np.float64))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)") as err:
        ds.stage_read("a", out=np.empty((4, 3), np.float32))
    assert not isinstance(err.value, CorruptValueError)
    out = np.empty((3, 4), np.float32)
    assert ds.stage_read("a", out=out) is out


def test_bytes_like_values_keep_their_type(ds):
    ds.stage_write("ba", bytearray(b"\x00mutable"))
    got = ds.stage_read("ba")
    assert type(got) is bytearray and got == bytearray(b"\x00mutable")
    ds.stage_write("b", b"\x00immutable")
    assert type(ds.stage_read("b")) is bytes
