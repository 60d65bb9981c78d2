"""The file backends against a hostile local environment.

Each test plants what another local user (or a stray process) could leave in or
next to a staging directory -- symlinks at spare files, in the recycle pool and at
a key's path, FIFOs, directories, hard links, foreign or world-writable shard
directories, a second manager on the same directory, a full disk -- and checks
what a user would: the file outside the store is byte-identical, nothing is left
behind, and every call returns (bounded by a guard thread, not a wall-clock
assertion). The plain path and the fast paths (spare files, the recycle pool)
run through the same tests, and through ``FaultyTransport`` with no faults.
"""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing as mp
import os
import pickle
import shutil
import socket
import subprocess
import threading

import numpy as np
import pytest

from simai.datastore import (
    BackendUnavailableError,
    DataStore,
    InvalidKeyError,
    ServerManager,
    StagedDataTimeout,
    StoreFullError,
    UnsafePathError,
    faults,
    server_registry,
)

pytestmark = pytest.mark.hostile

MiB = 1 << 20
GUARD_S = 20.0  # a call that has not returned by then is reported as hanging


# ---------------------------------------------------------------- helpers
def bounded(fn, *args, unblock=None, timeout=GUARD_S):
    """Run ``fn(*args)`` in a guard thread; fail (after ``unblock()``) if it hangs."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if unblock is not None:
            unblock()
        t.join(5)
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def release_fifo(path):
    """Open the FIFO's other end so that a reader blocked on it returns."""

    def unblock():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    return unblock


def victim(tmp_path, size=3 * MiB):
    """A file outside the store that nothing may modify: (path, its bytes)."""
    d = tmp_path / "outside"
    d.mkdir(exist_ok=True)
    p = d / "victim.bin"
    data = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes()
    p.write_bytes(data)
    return p, data


def assert_untouched(path, data):
    assert path.read_bytes() == data, f"{path} outside the store was modified"


def store_entries(root):
    out = []
    for dp, dns, fns in os.walk(root):
        out += [os.path.join(dp, n) for n in dns + fns]
    return out


def assert_clean(root):
    """No link inside the store, no temporary file left behind."""
    for p in store_entries(root):
        assert not os.path.islink(p), f"a link is still inside the store: {p}"
        assert not os.path.basename(p).startswith(".tmp-"), f"temporary file left: {p}"


def config(kind, tmp_path, **opts):
    if kind == "filesystem":
        return server_registry.create_config(
            "filesystem", server_address=str(tmp_path / "stage"), nshards=2, **opts
        )
    if kind == "node-local":
        return server_registry.create_config("node-local", nshards=2, **opts)
    return server_registry.create_config(
        "daos", server_address=str(tmp_path / "dfuse" / "stage"), nshards=2, **opts
    )


def store(info, faulty, name="w"):
    return DataStore(name, server_info=faults.inject(info, seed=0) if faulty else info)


def key_path(info, key):
    return DataStore("locate", server_info=info).transport._path(key)


WRAPPED = pytest.mark.parametrize("faulty", [False, True], ids=["plain", "faulty-wrapper"])


# ---------------------------------------------------------------- 1: spare files (ext4 fast path)
@WRAPPED
def test_symlink_planted_at_a_spare_file_is_never_written_through(tmp_path, faulty):
    outside, data = victim(tmp_path, 4096)
    with ServerManager("h", config=config("filesystem", tmp_path, swap_small=True)) as sm:
        info = sm.get_server_info()
        ds = store(info, faulty)
        ds.stage_write("k", np.arange(10.0))
        ds.stage_write("k", np.arange(10.0) + 1)  # the first version is now the key's spare
        path = key_path(info, "k")
        spare = os.path.join(os.path.dirname(path), ".spare-" + os.path.basename(path))
        assert os.path.isfile(spare)
        os.unlink(spare)
        os.symlink(outside, spare)
        for i in range(3):
            v = np.full(10, float(i))
            bounded(ds.stage_write, "k", v)
            np.testing.assert_array_equal(bounded(ds.stage_read, "k", 0), v)
        assert_untouched(outside, data)
        assert_clean(info["config"]["server_address"])


# ---------------------------------------------------------------- 2: the recycle pool
@WRAPPED
def test_symlink_planted_in_the_recycle_pool_is_never_written_through(tmp_path, faulty):
    outside, data = victim(tmp_path)
    with ServerManager("h", config=config("node-local", tmp_path)) as sm:
        info = sm.get_server_info()
        root = info["config"]["server_address"]
        os.symlink(outside, os.path.join(root, "simai-free", f"{len(data):016d}-planted"))
        ds = store(info, faulty)
        a = np.random.default_rng(1).random(2 * MiB // 8)  # fits the planted "pool file"
        for _ in range(2):
            bounded(ds.stage_write, "big", a)
            np.testing.assert_array_equal(bounded(ds.stage_read, "big", 0), a)
        assert_untouched(outside, data)
        assert_clean(root)


@WRAPPED
def test_symlink_at_a_key_path_is_not_recycled_when_the_key_is_cleaned(tmp_path, faulty):
    outside, data = victim(tmp_path)
    with ServerManager("h", config=config("node-local", tmp_path)) as sm:
        info = sm.get_server_info()
        os.symlink(outside, key_path(info, "big"))
        ds = store(info, faulty)
        bounded(ds.clean_staged_data, "big")
        a = np.random.default_rng(2).random(2 * MiB // 8)
        for _ in range(2):
            bounded(ds.stage_write, "big", a)
            np.testing.assert_array_equal(bounded(ds.stage_read, "big", 0), a)
        assert_untouched(outside, data)
        assert_clean(info["config"]["server_address"])


@pytest.mark.parametrize("kind", ["filesystem", "node-local"])
def test_hard_link_or_foreign_file_at_a_key_path_is_refused(tmp_path, kind):
    outside, data = victim(tmp_path, 4096)
    with ServerManager("h", config=config(kind, tmp_path)) as sm:
        info = sm.get_server_info()
        ds = DataStore("w", server_info=info)
        path = key_path(info, "k")
        if kind == "filesystem":  # same file system as the victim: a hard link to it
            os.link(outside, path)
            problem = "hard links"
        else:
            if os.geteuid() != 0:
                pytest.skip("chown to another uid needs root")
            with open(path, "wb") as f:
                f.write(data)
            os.chown(path, 65534, 65534)
            problem = "owned by uid 65534"
        with pytest.raises(UnsafePathError, match=problem):
            bounded(ds.stage_read, "k", 0)
        bounded(ds.stage_write, "k", np.arange(3))  # publishing replaces the name, not the file
        np.testing.assert_array_equal(ds.stage_read("k", timeout=0), np.arange(3))
        assert_untouched(outside, data)


# ---------------------------------------------------------------- 3: clean() is per store
def _write_through_pickle(blob, key):
    ds = pickle.loads(blob)  # the store travels to another process by pickle, as to a worker
    ds.stage_write(key, np.arange(4))


@pytest.mark.parametrize("kind", ["filesystem", "node-local", "daos-posix", "daos-kv-fake"])
def test_clean_removes_only_what_this_store_wrote(tmp_path, kind, request):
    if kind == "daos-kv-fake":
        request.getfixturevalue("fake_pydaos")
        cfg = server_registry.create_config("daos", mode="kv", pool="p", container="c")
    else:
        cfg = config(kind, tmp_path)
    with ServerManager("h", config=cfg) as sm:
        info = sm.get_server_info()
        sim, trainer = DataStore("sim", server_info=info), DataStore("trainer", server_info=info)
        sim.stage_write("u_0", np.arange(3))
        sim.stage_write_many({"u_1": 1, "field/ü 2": "x"})
        p = mp.get_context("fork").Process(
            target=_write_through_pickle, args=(pickle.dumps(sim), "u_child")
        )
        p.start()
        p.join(60)
        assert p.exitcode == 0
        trainer.stage_write("w_0", np.ones(2))
        np.testing.assert_array_equal(trainer.stage_read("u_0"), np.arange(3))  # names are shared
        for ds in (sim, trainer):
            ds.stage_write("status", ds.name)  # written by both
        messaging = kind != "daos-kv-fake"
        if messaging:
            trainer.send("to sim", targets=["sim"])
            sim.send("to trainer", targets=["trainer"])
        sim.clean()
        assert trainer.keys() == ["status", "w_0"]
        assert trainer.stage_read("status") == "trainer"
        if messaging:
            with pytest.raises(StagedDataTimeout):
                sim.receive(["trainer"], timeout=0)
            assert trainer.receive(["sim"], timeout=5) == {"sim": "to trainer"}
        trainer.clean()  # the last writer of "status" cleans: now it goes
        assert sim.keys() == []


# ---------------------------------------------------------------- 4: one manager per directory
@pytest.mark.parametrize("exists", [False, True], ids=["new-dir", "existing-dir"])
def test_a_second_manager_on_the_same_directory_is_refused(tmp_path, exists):
    stage = tmp_path / "stage"
    if exists:
        stage.mkdir()
        (stage / "mine.txt").write_text("user data")
    first = ServerManager("one", type="filesystem", server_address=str(stage), nshards=2)
    info = first.start_server()
    try:
        ds = DataStore("w", server_info=info)
        ds.stage_write("a", np.arange(5))
        second = ServerManager("two", type="filesystem", server_address=str(stage), nshards=2)
        with pytest.raises(BackendUnavailableError, match=rf"in use .*PID {os.getpid()}"):
            second.start_server()
        np.testing.assert_array_equal(ds.stage_read("a", timeout=0), np.arange(5))
    finally:
        first.stop_server()
    with second:  # the directory is free again once its holder stopped
        ds2 = DataStore("w", server_info=second.get_server_info())
        ds2.stage_write("b", 1)
        assert ds2.stage_read("b") == 1
    assert exists == stage.exists()
    if exists:
        assert [p.name for p in stage.iterdir()] == ["mine.txt"]


def _no_flock(fd, op):
    raise OSError(errno.ENOLCK, "No locks available")


def test_without_flock_an_exclusive_owner_file_names_the_holder_fake_no_flock(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(fcntl, "flock", _no_flock)  # as on a Lustre mount without flock
    stage = tmp_path / "stage"
    stage.mkdir()
    owner = stage / ".simai-datastore.owner"
    with ServerManager("one", type="filesystem", server_address=str(stage), nshards=2):
        assert json.loads(owner.read_text())["pid"] == os.getpid()
        with pytest.raises(BackendUnavailableError, match=rf"in use .*PID {os.getpid()}"):
            ServerManager("two", type="filesystem", server_address=str(stage)).start_server()
    assert not owner.exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with ServerManager("three", type="filesystem", server_address=str(stage), nshards=2):
        assert json.loads(owner.read_text())["pid"] == os.getpid()  # the stale one taken over
    owner.write_text(json.dumps({"host": "another-node", "pid": 1}))
    with pytest.raises(BackendUnavailableError, match=r"another-node.*remove"):
        ServerManager("four", type="filesystem", server_address=str(stage)).start_server()
    assert json.loads(owner.read_text())["host"] == "another-node"  # not ours to remove


# ---------------------------------------------------------------- 6: directories we did not make
@pytest.mark.parametrize("plant", ["mode-0777", "foreign-uid", "symlink"])
def test_a_shard_directory_we_did_not_make_is_refused(tmp_path, plant):
    if plant == "foreign-uid" and os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    stage = tmp_path / "stage"
    stage.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    shard = stage / "simai-00"
    if plant == "symlink":
        os.symlink(outside, shard)
    else:
        shard.mkdir(mode=0o700)
        if plant == "mode-0777":
            os.chmod(shard, 0o777)
        else:
            os.chown(shard, 65534, 65534)
    cfg = server_registry.create_config("filesystem", server_address=str(stage), nshards=2)
    with pytest.raises(UnsafePathError, match="simai-00"):
        ServerManager("h", config=cfg).start_server()
    # a store attached without a manager refuses it too, key by key
    ds = DataStore("w", server_info={"type": "filesystem", "config": cfg.model_dump()})
    refused = 0
    for i in range(16):
        try:
            bounded(ds.stage_write, f"k{i}", i)
        except UnsafePathError as exc:
            assert "simai-00" in str(exc)
            refused += 1
    assert refused  # some keys hash to shard 00
    assert list(outside.iterdir()) == []
    assert plant == "symlink" or list(shard.iterdir()) == []


# ---------------------------------------------------------------- 8: FIFOs
@WRAPPED
@pytest.mark.parametrize("kind", ["filesystem", "node-local"])
def test_a_fifo_at_a_key_path_is_refused_not_opened(tmp_path, kind, faulty):
    with ServerManager("h", config=config(kind, tmp_path)) as sm:
        info = sm.get_server_info()
        ds = store(info, faulty)
        path = key_path(info, "k")
        os.mkfifo(path, 0o600)
        for timeout in (0, 1):
            with pytest.raises(UnsafePathError, match="FIFO"):
                bounded(ds.stage_read, "k", timeout, unblock=release_fifo(path))
        with pytest.raises(UnsafePathError, match="FIFO"):
            bounded(ds.poll_staged_data, "k", unblock=release_fifo(path))
        with pytest.raises(UnsafePathError, match="FIFO"):
            bounded(ds.stage_read_many, ["k"], 0, unblock=release_fifo(path))
        bounded(ds.stage_write, "k", 5, unblock=release_fifo(path))  # replaces the FIFO itself
        assert ds.stage_read("k", timeout=0) == 5
        assert_clean(info["config"]["server_address"])


@pytest.mark.parametrize("kind", ["filesystem", "node-local"])
def test_a_fifo_in_a_queue_is_refused_not_opened(tmp_path, kind):
    with ServerManager("h", config=config(kind, tmp_path)) as sm:
        info = sm.get_server_info()
        a, b = DataStore("a", server_info=info), DataStore("b", server_info=info)
        a.send(1, targets=["b"])  # makes the queue directory
        assert b.receive(["a"], timeout=5) == {"a": 1}
        qdir = next(
            os.path.join(dp, "")
            for dp, _, fns in os.walk(info["config"]["server_address"])
            if ".name" in fns
        )
        fifo = os.path.join(qdir, "00000000000000000000-planted")
        os.mkfifo(fifo, 0o600)
        with pytest.raises(UnsafePathError, match="FIFO"):
            bounded(b.receive, ["a"], 1, unblock=release_fifo(fifo))
        a.send(2, targets=["b"])
        assert b.receive(["a"], timeout=5) == {"a": 2}


# ---------------------------------------------------------------- 12: directories at a key's path
@pytest.mark.parametrize(
    "kind,opts",
    [
        ("filesystem", {"swap_small": True}),
        ("filesystem", {"swap_small": False}),
        ("node-local", {}),
    ],
    ids=["filesystem-swap", "filesystem-plain", "node-local"],
)
def test_a_directory_at_a_key_path_is_refused_and_kept(tmp_path, kind, opts):
    with ServerManager("h", config=config(kind, tmp_path, **opts)) as sm:
        info = sm.get_server_info()
        ds = DataStore("w", server_info=info)
        path = key_path(info, "k")
        os.mkdir(path)
        with open(os.path.join(path, "inner"), "w") as f:
            f.write("keep me")
        with pytest.raises(UnsafePathError, match="directory"):
            bounded(ds.stage_read, "k", 0)
        for value in (np.arange(4), np.zeros(MiB // 4)):  # small (swap path) and large (pool)
            with pytest.raises(UnsafePathError, match="directory"):
                bounded(ds.stage_write, "k", value)
        with pytest.raises(UnsafePathError, match="directory"):
            bounded(ds.clean_staged_data, "k")
        with open(os.path.join(path, "inner")) as f:
            assert f.read() == "keep me"
        assert_clean(info["config"]["server_address"])


# ---------------------------------------------------------------- 13: long names
LONG_KEYS = ["k" * 1024, "é" * 512, "🔑" * 256, "a/" * 300 + "b"]


@pytest.mark.parametrize("kind", ["filesystem", "node-local", "daos-posix"])
def test_names_up_to_1024_bytes_work_and_longer_ones_are_refused(tmp_path, kind):
    with ServerManager("h", config=config(kind, tmp_path)) as sm:
        info = sm.get_server_info()
        sender = DataStore("s" * 150, server_info=info)
        receiver = DataStore("r" * 130, server_info=info)
        sender.send(np.arange(3), targets=[receiver])
        got = bounded(receiver.receive, [sender], 5)
        np.testing.assert_array_equal(got[sender.name], np.arange(3))
        for lock in ("l" * 300, "é" * 120, "x" * 1024):
            with sender.acquire_lock(lock, timeout=5):
                pass
        for i, key in enumerate(LONG_KEYS):
            sender.stage_write(key, i)
            assert receiver.stage_read(key, timeout=0) == i
        assert sorted(receiver.keys()) == sorted(LONG_KEYS)
        for key in ("k" * 1025, "é" * 513):
            with pytest.raises(InvalidKeyError, match="1024"):
                sender.stage_write(key, 0)
        sender.clean()
        assert receiver.keys() == []


# ---------------------------------------------------------------- 16: a full store
@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        timeout=30,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


@pytest.mark.parametrize("kind", ["node-local", "filesystem"])
def test_a_full_store_names_itself_and_keeps_older_values(small_tmpfs, kind):
    root = str(small_tmpfs / "stage")
    with ServerManager("full", type=kind, server_address=root, nshards=2) as sm:
        ds = DataStore("w", server_info=sm.get_server_info())
        ds.stage_write("old", np.arange(1000))
        ds.stage_write("a", np.ones(3 * MiB // 8))
        with pytest.raises(StoreFullError, match=r"stage.*capacity 8\.0 MiB") as info:
            bounded(ds.stage_write, "b", np.zeros(6 * MiB // 8))
        assert info.value.errno == errno.ENOSPC
        assert not ds.poll_staged_data("b") and ds.keys() == ["a", "old"]
        assert_clean(root)
        np.testing.assert_array_equal(ds.stage_read("old"), np.arange(1000))
        np.testing.assert_array_equal(ds.stage_read("a"), np.ones(3 * MiB // 8))
        ds.clean_staged_data("a")  # node-local keeps its file in the recycle pool...
        c = np.full(6 * MiB // 8, 2.0)
        ds.stage_write("c", c)  # ...and gives the space back when the store is full
        np.testing.assert_array_equal(ds.stage_read("c"), c)
    assert os.listdir(small_tmpfs) == []


# ---------------------------------------------------------------- anything else planted for reuse
def _plant(path, what):
    if what == "fifo":
        os.mkfifo(path, 0o600)
    elif what == "directory":
        os.mkdir(path, 0o700)
        with open(os.path.join(path, "inner"), "w") as f:
            f.write("x")
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()


@pytest.mark.parametrize("what", ["fifo", "directory", "socket"])
@pytest.mark.parametrize("where", ["spare", "pool"])
def test_anything_but_our_file_planted_for_reuse_is_dropped_unopened(tmp_path, where, what):
    if where == "spare":
        cfg = config("filesystem", tmp_path, swap_small=True)
        value = np.arange(10.0)
    else:
        cfg = config("node-local", tmp_path)
        value = np.random.default_rng(3).random(2 * MiB // 8)
    with ServerManager("h", config=cfg) as sm:
        info = sm.get_server_info()
        root = info["config"]["server_address"]
        ds = DataStore("w", server_info=info)
        path = key_path(info, "k")
        if where == "spare":
            spot = os.path.join(os.path.dirname(path), ".spare-" + os.path.basename(path))
            ds.stage_write("k", value)  # the spare is claimed from the second write on
        else:
            spot = os.path.join(root, "simai-free", f"{3 * MiB:016d}-planted")
        _plant(spot, what)
        for i in range(2):
            bounded(ds.stage_write, "k", value + i, unblock=release_fifo(spot))
            np.testing.assert_array_equal(bounded(ds.stage_read, "k", 0), value + i)
        assert not [p for p in store_entries(root) if "inner" in p or "planted" in p]
        assert_clean(root)


@pytest.mark.parametrize("kind", ["filesystem", "node-local"])
def test_links_planted_at_a_lock_file_or_queue_directory_are_refused(tmp_path, kind):
    outside, data = victim(tmp_path, 4096)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ServerManager("h", config=config(kind, tmp_path)) as sm:
        info = sm.get_server_info()
        root = info["config"]["server_address"]
        a = DataStore("a", server_info=info)
        os.symlink(outside, os.path.join(root, "simai-locks", "l.lock"))
        with pytest.raises(UnsafePathError, match="symbolic link"):
            bounded(lambda: a.acquire_lock("l", timeout=1).__enter__())
        a.send(0, ["b"])
        qdir = next(dp for dp, _, fns in os.walk(os.path.join(root, "simai-queues")) if fns)
        shutil.rmtree(qdir)
        os.symlink(elsewhere, qdir)
        fresh = DataStore("a", server_info=info)  # opens the queue directory anew
        with pytest.raises(UnsafePathError, match="symbolic link"):
            bounded(fresh.send, 1, ["b"])
        assert list(elsewhere.iterdir()) == []
        assert_untouched(outside, data)


def test_the_users_own_staging_root_stays_usable_whatever_its_mode(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.chmod(scratch, 0o2775)  # a group project directory: the root is the user's choice
    ds = DataStore.from_url(f"file://{scratch}?nshards=2", name="w")
    ds.stage_write("k", np.arange(3))
    np.testing.assert_array_equal(ds.stage_read("k", timeout=0), np.arange(3))
    made = [p for p in store_entries(scratch) if os.path.isdir(p)]
    assert made and all(os.stat(p).st_mode & 0o777 == 0o700 for p in made)
