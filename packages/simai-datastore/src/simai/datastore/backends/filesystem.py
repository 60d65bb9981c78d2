"""``filesystem`` backend: one file per key under a sharded staging directory.

Writes go to a temporary file in the key's own directory and are published with
``os.replace`` (atomic on POSIX), so a reader sees a whole value or none. Files
are created mode 0600: on a shared file system other users cannot read them.
Keys never become paths directly (see ``_keys.key_to_relpath``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import itertools
import json
import mmap
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import xxhash

from simai.datastore._keys import key_to_relpath, relpath_to_key, validate_key
from simai.datastore.config import FilesystemConfig
from simai.datastore.errors import BackendUnavailableError
from simai.datastore.serialize import Buffer, Parts, PendingFrame

__all__ = ["DirectoryServer", "FilesystemTransport"]

_SHARD_PREFIX = "simai-"
_QUEUES = "simai-queues"
_LOCKS = "simai-locks"
_POOL = "simai-free"
# Recycling pays off for large values only; the pool stays small.
_RECYCLE_MIN = 1 << 20
_POOL_FILES = 8
_POOL_BYTES = 1 << 30
_TMP = ".tmp-"
# Below this size a read() is cheaper than setting up and tearing down a mapping.
_MMAP_MIN = 256 * 1024
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_counter = itertools.count()
_HOST = xxhash.xxh32_hexdigest(socket.gethostname().encode())


_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def _unique() -> str:
    return f"{_HOST}-{_pid}-{threading.get_ident() & 0xFFFFFF:x}-{next(_counter)}"


# File systems with a real fallocate(); elsewhere glibc would emulate it by writing.
_PREALLOC_FS = {"ext4", "xfs", "btrfs"}
# Local journaling file systems: a lease sees every opener there, so a file that
# left a key's path is safe to rewrite (on NFS or Lustre a reader on another node
# would be invisible to the lease), and creating plus freeing a file costs journal
# work worth avoiding. tmpfs is left out: a file is cheaper to create there than
# the extra calls of swapping (1 KiB: 30 µs plain, 40 µs swapped).
_SWAP_FS = {"ext4", "xfs", "btrfs"}
_SPARE = ".spare-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _exchange_fn() -> Any:
    """libc's renameat2 (glibc >= 2.28), or None."""
    global _renameat2
    if _renameat2 is None:
        try:
            f = ctypes.CDLL(None, use_errno=True).renameat2
            f.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
            f.restype = ctypes.c_int
            _renameat2 = f
        except (OSError, AttributeError):
            _renameat2 = False
    return _renameat2 or None


def _unshared(fd: int) -> bool:
    """True when no other process has ``fd``'s file open or mapped (a write lease is granted).

    A lease break (an open racing with us) is signalled with SIGURG, whose default
    action is to ignore it, instead of SIGIO, whose default would kill the process.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    except OSError:
        return False
    return True


def _fs_type(path: str) -> str:
    """The file-system type of ``path`` from /proc/self/mounts ("" when unknown)."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1:3] for line in f]
    except OSError:
        return ""
    real = os.path.realpath(path)
    best, fstype = "", ""
    for mnt, typ in mounts:
        mnt = mnt.replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, typ
    return fstype


def _write_all(fd: int, parts: Parts, pwrite: bool = False) -> None:
    bufs = [p if isinstance(p, memoryview) else memoryview(p) for p in parts]
    bufs = [b.cast("B") if b.format != "B" or b.ndim != 1 else b for b in bufs]
    offset = 0
    while bufs:
        n = os.pwritev(fd, bufs, offset) if pwrite else os.writev(fd, bufs)
        offset += n
        while bufs and n >= bufs[0].nbytes:
            n -= bufs[0].nbytes
            bufs.pop(0)
        if bufs and n:
            bufs[0] = bufs[0][n:]


# Hash each piece right after copying it, while it is still in cache (L2-sized).
_STREAM_CHUNK = 512 * 1024


def _write_streaming(fd: int, frame: PendingFrame) -> None:
    """Write ``frame``'s payload after its header, checksumming each piece as it goes,
    then the sealed header at offset 0 (the file is not published yet)."""
    head, payload = frame
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    update = frame.hasher.update
    base, total = len(head), view.nbytes
    off = 0
    while off < total:
        piece = view[off : off + _STREAM_CHUNK]
        update(piece)
        done = 0
        while done < piece.nbytes:
            done += os.pwrite(fd, piece[done:], base + off + done)
        off += piece.nbytes
    _write_all(fd, [frame.sealed_head()], pwrite=True)


def _read_all(fd: int, size: int) -> Buffer:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:  # file shorter than fstat said: let decode report the truncation
            return view[:got]
        got += n
    return buf


def _backoff(deadline: float) -> Iterator[None]:
    """Sleep 50 µs, growing to 2 ms, until ``deadline`` (monotonic)."""
    delay = 5e-5
    while True:
        yield
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(delay, left))
        delay = min(delay * 1.6, 2e-3)


class FilesystemTransport:
    """Byte-level transport over a directory (also the base of node-local and daos-posix)."""

    backend = "filesystem"
    Config = FilesystemConfig
    # put() accepts a serialize.PendingFrame and completes its checksum while writing
    streams_checksum = True

    def __init__(self, config: FilesystemConfig):
        if config.server_address is None:
            raise ValueError(
                f"{self.backend}: server_address (the staging directory) is required; "
                "ServerManager creates one when you start a server"
            )
        self._cfg = config
        self._root = config.server_address
        if not os.path.isdir(self._root):
            raise BackendUnavailableError(
                f"{self.backend}: staging directory {self._root!r} does not exist"
            )
        self._nshards = config.nshards
        self._width = max(2, len(f"{config.nshards - 1:x}"))
        self._fsync = config.fsync
        self._mmap = config.mmap_reads
        self._made: set[str] = set()
        self._shards = self.shard_dirs()
        fstype = _fs_type(self._root)
        self._prealloc = fstype in _PREALLOC_FS
        self._recycle = config.recycle and hasattr(fcntl, "F_SETLEASE")
        swap = fstype in _SWAP_FS if config.swap_small is None else config.swap_small
        self._swap = bool(swap and hasattr(fcntl, "F_SETLEASE") and _exchange_fn())
        self._pool_ok = False

    @property
    def reuses_files(self) -> bool:
        """Whether files that left a key's path are rewritten (see ``DataStore.stage_read``)."""
        return self._swap or self._recycle

    # ------------------------------------------------------------------ paths
    def shard_dirs(self) -> list[str]:
        return [
            os.path.join(self._root, f"{_SHARD_PREFIX}{i:0{self._width}x}")
            for i in range(self._nshards)
        ]

    def _path(self, key: str) -> str:
        validate_key(key)
        shard = self._shards[xxhash.xxh3_64_intdigest(key.encode("utf-8")) % self._nshards]
        return f"{shard}/{key_to_relpath(key)}"

    # ------------------------------------------------------------------ core
    def _publish(self, path: str, parts: Parts, what: str, swap: bool = False) -> None:
        d = path.rpartition("/")[0]
        tmp = f"{d}/{_TMP}{_unique()}"
        size = sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in parts)
        if self._recycle and size >= _RECYCLE_MIN:
            fd = self._claim_recycled(size, tmp)
            if fd is not None:
                self._finish(fd, tmp, path, parts, size, what, recycled=True)
                return
        elif swap and self._swap and size < _RECYCLE_MIN:
            fd = self._claim_spare(path, tmp)
            if fd is not None:
                self._finish(fd, tmp, path, parts, size, what, recycled=True, swap=True)
                return
        for attempt in (0, 1):
            if d not in self._made or attempt:
                os.makedirs(d, exist_ok=True)
                self._made.add(d)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileNotFoundError:  # the directory was removed (clear()) since we made it
                if attempt:
                    raise
        self._finish(fd, tmp, path, parts, size, what, recycled=False, swap=swap and self._swap)

    def _finish(
        self,
        fd: int,
        tmp: str,
        path: str,
        parts: Parts,
        size: int,
        what: str,
        recycled: bool,
        swap: bool = False,
    ) -> None:
        d = path.rpartition("/")[0]
        try:
            try:
                if not recycled and self._prealloc and size:
                    # Allocated (not delayed-allocation) blocks: ext4 then need not
                    # flush the file when it replaces an existing one, and a full
                    # disk fails here, before any byte is written.
                    os.posix_fallocate(fd, 0, size)
                if isinstance(parts, PendingFrame):
                    _write_streaming(fd, parts)
                else:
                    _write_all(fd, parts, pwrite=recycled)
                if recycled:
                    os.ftruncate(fd, size)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if swap and size < _RECYCLE_MIN:
                self._swap_in(tmp, path)
            else:
                if self._recycle:
                    self._keep_old_version(path)
                os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise type(exc)(
                    exc.errno, f"{self.backend}: writing {what} failed: {exc.strerror}", path
                ) from exc
            raise
        if self._fsync:
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # ------------------------------------------------------------------ small values
    # Creating a file and freeing the one it replaces is most of the cost of a small
    # atomic write on ext4 (1 KiB: ~130 µs of journal work against ~30 µs without).
    # So on local file systems a small value is published by *exchanging* the new
    # file with the key's current one (renameat2 RENAME_EXCHANGE: atomic, readers
    # see the old or the new file), and the old file, now under our temporary name,
    # is kept as the key's spare ``.spare-<name>``. The next write of that key claims
    # the spare (an atomic rename: one writer wins) and rewrites it -- but only when
    # a write lease shows that nobody has it open or mapped; otherwise it is dropped
    # and a fresh file is written as before.
    def _swap_in(self, tmp: str, path: str) -> None:
        exchange = _exchange_fn()
        if exchange(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE):
            err = ctypes.get_errno()
            if err != errno.ENOENT:  # not supported here (EINVAL): publish plainly from now on
                self._swap = False
            os.replace(tmp, path)  # no current version (or no exchange): a plain rename
            return
        d, _, name = path.rpartition("/")
        try:
            os.rename(tmp, f"{d}/{_SPARE}{name}")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _claim_spare(self, path: str, tmp: str) -> int | None:
        d, _, name = path.rpartition("/")
        try:
            os.rename(f"{d}/{_SPARE}{name}", tmp)  # atomic: one writer wins it
        except (FileNotFoundError, NotADirectoryError):
            return None
        fd = -1
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CLOEXEC)
            if os.fstat(fd).st_nlink == 1 and _unshared(fd):
                return fd
        except OSError:
            pass
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a reader still has it: its copy stays valid, we drop our name
        return None

    # ------------------------------------------------------------------ recycling
    # Publishing a new version needs fresh pages, and on tmpfs allocating them costs
    # more than copying the data. So large replaced or deleted files go to a small
    # pool and a later write of a similar size reuses one -- but only when nobody has
    # it open or mapped: a write lease (F_SETLEASE) is granted only then, and an
    # array a reader still holds keeps its mapping, so it is never written under it.
    def _pool_dir(self) -> str:
        if not self._pool_ok:  # ServerManager creates it; a bare from_url() store may not have
            os.makedirs(f"{self._root}/{_POOL}", mode=0o700, exist_ok=True)
            self._pool_ok = True
        return f"{self._root}/{_POOL}"

    def _keep_old_version(self, path: str) -> None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        if st.st_size >= _RECYCLE_MIN:
            try:
                os.link(path, f"{self._pool_dir()}/{st.st_size:016d}-{_unique()}")
            except FileNotFoundError:
                return  # replaced or deleted meanwhile, or no pool directory (clear())
            self._trim_pool()

    def _to_pool(self, path: str) -> bool:
        try:
            size = os.stat(path).st_size
            if size < _RECYCLE_MIN:
                return False
            os.rename(path, f"{self._pool_dir()}/{size:016d}-{_unique()}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        self._trim_pool()
        return True

    def _pool(self) -> list[tuple[int, str]]:
        try:
            names = os.listdir(f"{self._root}/{_POOL}")
        except FileNotFoundError:
            self._pool_ok = False
            return []
        out = []
        for n in names:
            head = n.partition("-")[0]
            if head.isdigit():
                out.append((int(head), n))
        return sorted(out)

    def _trim_pool(self) -> None:
        pool = self._pool()
        total = sum(s for s, _ in pool)
        while pool and (len(pool) > _POOL_FILES or total > _POOL_BYTES):
            s, n = pool.pop(0)
            total -= s
            with contextlib.suppress(OSError):
                os.unlink(f"{self._pool_dir()}/{n}")

    def _claim_recycled(self, size: int, tmp: str) -> int | None:
        d = tmp.rpartition("/")[0]
        if d not in self._made:
            return None
        for have, name in self._pool():
            if not size <= have < 2 * size:
                continue
            try:
                os.rename(f"{self._pool_dir()}/{name}", tmp)  # atomic: one writer wins it
            except FileNotFoundError:
                continue
            fd = os.open(tmp, os.O_RDWR | os.O_CLOEXEC)
            try:
                # not also published or pooled elsewhere, and nobody has it open/mapped
                if os.fstat(fd).st_nlink == 1 and _unshared(fd):
                    return fd
            except OSError:
                pass
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # still in use: its readers keep it alive, we drop our name
            return None
        return None

    def _load(self, path: str) -> Buffer | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            size = os.fstat(fd).st_size
            if self._mmap and size >= _MMAP_MIN:
                # Private, copy-on-write map of an immutable published file: no
                # copy, and arrays built on it are still writable. (No MAP_POPULATE:
                # on a writable private map it would copy every page up front.)
                mm = mmap.mmap(
                    fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
                )
                with contextlib.suppress(
                    OSError
                ):  # map all pages at once, read-only (Linux >= 5.14)
                    mm.madvise(_MADV_POPULATE_READ)
                return mm
            return _read_all(fd, size)
        finally:
            os.close(fd)

    def put(self, key: str, value: Parts) -> None:
        self._publish(self._path(key), value, f"key {key!r}", swap=True)

    def get(self, key: str) -> Buffer | None:
        return self._load(self._path(key))

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self._swap:
            d, _, name = path.rpartition("/")
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(f"{d}/{_SPARE}{name}")
        if self._recycle and self._to_pool(path):
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path)

    def put_many(self, items: Mapping[str, Parts]) -> None:
        for k, v in items.items():
            self.put(k, v)

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        return [self.get(k) for k in keys]

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for shard in self.shard_dirs():
            for rel in self._walk(shard, ""):
                key = relpath_to_key(rel)
                if key is not None and key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def _walk(self, d: str, rel: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(d))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            if e.name.endswith("~") and e.is_dir(follow_symlinks=False):
                yield from self._walk(e.path, r)
            elif e.is_file(follow_symlinks=False):
                yield r

    def clear(self) -> None:
        for d in [*self.shard_dirs(), os.path.join(self._root, _QUEUES)]:
            shutil.rmtree(d, ignore_errors=True)
        for _, name in self._pool():
            with contextlib.suppress(OSError):
                os.unlink(f"{self._root}/{_POOL}/{name}")
        self._made.clear()

    def wait(self, key: str, timeout: float) -> bool:
        path = self._path(key)
        return any(os.path.exists(path) for _ in _backoff(time.monotonic() + timeout))

    # ------------------------------------------------------------------ messaging
    def _queue_dir(self, queue: str) -> str:
        return os.path.join(
            self._root, _QUEUES, key_to_relpath(validate_key(queue)).replace("/", "")
        )

    def push(self, queue: str, value: Parts) -> None:
        # Names sort by time, then writer: FIFO per sender, roughly FIFO overall.
        name = f"{time.time_ns():020d}-{_unique()}"
        self._publish(os.path.join(self._queue_dir(queue), name), value, f"a message to {queue!r}")

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        d = self._queue_dir(queue)
        for _ in _backoff(time.monotonic() + timeout):
            try:
                names = sorted(n for n in os.listdir(d) if not n.startswith("."))
            except FileNotFoundError:
                names = []
            for name in names:
                claimed = os.path.join(d, f".claimed-{_unique()}")
                try:
                    os.rename(os.path.join(d, name), claimed)  # atomic: one receiver wins
                except FileNotFoundError:
                    continue
                try:
                    return self._load(claimed)
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(claimed)
        return None

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None) -> Iterator[None]:
        d = os.path.join(self._root, _LOCKS)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, key_to_relpath(validate_key(name)).replace("/", "") + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
            for _ in _backoff(deadline):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
            else:
                raise TimeoutError(f"could not acquire lock {name!r} within {timeout} s")
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ config
    def close(self) -> None:
        pass

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FilesystemTransport:
        return cls(cls.Config.model_validate(config))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._root!r}, nshards={self._nshards})"


class DirectoryServer:
    """Creates the staging directory; on stop removes only what it created."""

    default_parent = None  # None: the current directory (shared across nodes on HPC systems)

    def __init__(self, config: FilesystemConfig, transport_cls: type[FilesystemTransport]):
        self.config = config
        self._transport_cls = transport_cls
        self._created: list[str] = []
        self.root: str | None = None

    def start(self) -> FilesystemConfig:
        root = self.config.server_address
        if root is None:
            parent = os.environ.get("SIMAI_DATASTORE_DIR") or self._default_parent()
            root = tempfile.mkdtemp(
                prefix=".simai-stage-" if parent == os.getcwd() else "simai-stage-", dir=parent
            )
            self._created.append(root)
        elif not os.path.exists(root):
            os.makedirs(root, mode=0o700)
            self._created.append(root)
        elif not os.path.isdir(root):
            raise NotADirectoryError(errno.ENOTDIR, "server_address is not a directory", root)
        self.root = root
        cfg = self.config.model_copy(update={"server_address": root})
        transport = self._transport_cls(cfg)
        dirs = [*transport.shard_dirs(), os.path.join(root, _QUEUES), os.path.join(root, _LOCKS)]
        for d in [*dirs, os.path.join(root, _POOL)]:
            if not os.path.exists(d):
                os.makedirs(d, mode=0o700)
                if root not in self._created:
                    self._created.append(d)
        if root in self._created:
            with open(os.path.join(root, ".simai-datastore.json"), "w") as f:
                json.dump({"type": cfg.type, "nshards": cfg.nshards, "pid": os.getpid()}, f)
        return cfg

    def _default_parent(self) -> str:
        return os.getcwd()

    def alive(self) -> bool:
        return self.root is not None and os.path.isdir(self.root)

    def stop(self) -> None:
        for d in reversed(self._created):
            shutil.rmtree(d, ignore_errors=True)
        self._created.clear()
        self.root = None


FilesystemTransport.Server = DirectoryServer
