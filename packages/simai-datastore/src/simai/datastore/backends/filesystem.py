"""``filesystem`` backend: one file per key under a sharded staging directory.

The staging directory may sit where other local users can write (a shared file
system, /dev/shm), so nothing below its root is trusted by name:

* every file and directory inside the store is opened relative to a directory
  fd we opened and checked (``openat``), with ``O_NOFOLLOW``: no link is followed;
* directories we create are 0700; one inside the store that another uid owns, or
  that is group/world-writable, is refused (:class:`UnsafePathError` naming it);
* a file is ``fstat``-checked (regular, ours, one link) before it is read, mapped
  or rewritten, and opened with ``O_NONBLOCK``: a FIFO, socket, device or
  directory at a key's path is refused, never waited on;
* a write goes to a temporary file in the key's own directory and is published
  with one rename (an exchange where the old file is kept for reuse), so a reader
  sees a whole value or none; a full disk raises :class:`StoreFullError` and
  leaves nothing behind.

Keys never become paths directly (see ``_keys.key_to_relpath``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import itertools
import json
import mmap
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import xxhash

from simai.datastore._batch import OneByOne
from simai.datastore._keys import key_to_relpath, name_to_component, relpath_to_key, validate_key
from simai.datastore._nodes import is_local, spawner, this_node
from simai.datastore.config import FilesystemConfig
from simai.datastore.errors import BackendUnavailableError, StoreFullError, UnsafePathError
from simai.datastore.serialize import Buffer, Parts, PendingFrame

__all__ = ["DirectoryServer", "FilesystemTransport"]

_SHARD_PREFIX = "simai-"
_QUEUES = "simai-queues"
_LOCKS = "simai-locks"
_POOL = "simai-free"
_OWNERS = "simai-owners"
_QUEUE_NAME = ".name"  # inside a queue directory: the queue's full name
_LOCK_FILE = ".simai-datastore.lock"
_OWNER_FILE = ".simai-datastore.owner"  # where flock() is unavailable
# Recycling pays off for large values only; the pool stays small.
_RECYCLE_MIN = 1 << 20
_POOL_FILES = 8
_POOL_BYTES = 1 << 30
_TMP = ".tmp-"
_SPARE = ".spare-"
# Below this size a read() is cheaper than setting up and tearing down a mapping.
_MMAP_MIN = 256 * 1024
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_MAX_ENTRY = 8 * 1024  # an owner-index entry holds one key (<= 1024 UTF-8 bytes)

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_REUSE = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_LOCK = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# open() of a link with O_NOFOLLOW, of a socket, of a special file we may not use
_PLANTED = {errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR, errno.ENOTDIR}
_FULL = {errno.ENOSPC, errno.EDQUOT}
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

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
# the extra calls of swapping.
_SWAP_FS = {"ext4", "xfs", "btrfs"}
_RENAME_EXCHANGE = 2
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


# ---------------------------------------------------------------- checks
def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _file_problem(st: os.stat_result, uid: int) -> str | None:
    """Why a file may not be read, mapped or rewritten by us (None: it may)."""
    if not stat.S_ISREG(st.st_mode):
        return f"it is {_kind(st.st_mode)}, not a file this store wrote"
    if st.st_uid != uid:
        return f"the file is owned by uid {st.st_uid}, not by us (uid {uid})"
    if st.st_nlink > 1:  # 0 is fine: replaced or deleted since we opened it
        return f"the file has {st.st_nlink} hard links (ours have one)"
    return None


def _dir_problem(st: os.stat_result, uid: int) -> str | None:
    if not stat.S_ISDIR(st.st_mode):
        return f"it is {_kind(st.st_mode)}, not a directory"
    if st.st_uid != uid:
        return f"the directory is owned by uid {st.st_uid}, not by us (uid {uid})"
    if st.st_mode & 0o022:
        return f"the directory is group- or world-writable (mode {st.st_mode & 0o7777:04o})"
    return None


def _what_is(dir_fd: int, name: str) -> str:
    try:
        return f"it is {_kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)}"
    except OSError as exc:
        return exc.strerror or "it cannot be examined"


def _open_dir(parent: int, name: str, path: str, uid: int, create: bool) -> int | None:
    """A checked fd of directory ``name`` in ``parent`` (made 0700 if missing and
    ``create``); None when it is missing and not ``create``."""
    for _ in range(3):
        try:
            fd = os.open(name, _O_DIR, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePathError(path, f"{_what_is(parent, name)}, not a directory") from None
            raise
        try:
            problem = _dir_problem(os.fstat(fd), uid)
        except OSError:
            problem = "it cannot be examined"
        if problem:
            os.close(fd)
            raise UnsafePathError(path, problem)
        return fd
    raise FileNotFoundError(errno.ENOENT, "directory removed while being created", path)


def _purge(fd: int, keep: frozenset[str] = frozenset()) -> None:
    """Remove everything in directory ``fd`` except ``keep``, following no link."""
    with os.scandir(fd) as it:
        entries = list(it)
    for e in entries:
        if e.name in keep:
            continue
        if e.is_dir(follow_symlinks=False):
            try:
                sub = os.open(e.name, _O_DIR, dir_fd=fd)
            except OSError:
                continue
            try:
                _purge(sub)
            finally:
                os.close(sub)
            with contextlib.suppress(OSError):
                os.rmdir(e.name, dir_fd=fd)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.name, dir_fd=fd)


def _drop(dir_fd: int, name: str) -> None:
    """Remove entry ``name`` of the store, whatever it is, following no link."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except IsADirectoryError:  # a directory planted where a file was expected
        with contextlib.suppress(OSError):
            fd = os.open(name, _O_DIR, dir_fd=dir_fd)
            try:
                _purge(fd)
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        pass


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


# ---------------------------------------------------------------- I/O
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
    started = frame.hasher
    frame.hasher = started.copy()  # a failed write (a full disk) may be retried
    update = frame.hasher.update
    base, total = len(head), view.nbytes
    off = 0
    try:
        while off < total:
            piece = view[off : off + _STREAM_CHUNK]
            update(piece)
            done = 0
            while done < piece.nbytes:
                done += os.pwrite(fd, piece[done:], base + off + done)
            off += piece.nbytes
        _write_all(fd, [frame.sealed_head()], pwrite=True)
    except BaseException:
        frame.hasher = started
        raise


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


def _close_all(fds: dict[str, int], stale: list[int]) -> None:
    for fd in [*fds.values(), *stale]:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()
    stale.clear()


class FilesystemTransport(OneByOne):
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
        # per-node stores: this node's directory inside the root, opened from the root's
        # fd under the same checks as every directory inside the store
        self._node: str | None = None
        if config.nodes and config.per_node_dirs:
            try:
                self._node = this_node(config.nodes)
            except ValueError as exc:
                raise BackendUnavailableError(f"{self.backend}: {exc}") from None
            self._root = config.node_dir(self._node)
        if not os.path.isdir(self._root):
            raise BackendUnavailableError(
                f"{self.backend}: staging directory {self._root!r} does not exist"
                + (f" (node {self._node}; server stopped?)" if self._node else "")
            )
        self._uid = os.geteuid()
        self._nshards = config.nshards
        self._width = max(2, len(f"{config.nshards - 1:x}"))
        self._fsync = config.fsync
        self._mmap = config.mmap_reads
        self._shards = [f"{_SHARD_PREFIX}{i:0{self._width}x}" for i in range(self._nshards)]
        # Checked directory fds by path relative to the root ("" is the root): the
        # store's top directories and its queue directories, opened once. A
        # directory removed under us (server stopped) is reopened by path once;
        # the old fds are closed only with the transport, as a thread may hold one.
        self._fds: dict[str, int] = {}
        self._stale: list[int] = []
        self._finalizer = weakref.finalize(self, _close_all, self._fds, self._stale)
        # owner -> [index directory component, its (dev, ino), keys recorded there]
        self._recorded: dict[str, list[Any]] = {}
        fstype = _fs_type(self._root)
        self._prealloc = fstype in _PREALLOC_FS
        self._recycle = config.recycle and hasattr(fcntl, "F_SETLEASE")
        swap = fstype in _SWAP_FS if config.swap_small is None else config.swap_small
        self._exchange = _exchange_fn() if hasattr(fcntl, "F_SETLEASE") else None
        self._swap = bool(swap and self._exchange)

    @property
    def reuses_files(self) -> bool:
        """Whether files that left a key's path are rewritten (see ``DataStore.stage_read``)."""
        return self._swap or self._recycle

    # ------------------------------------------------------------------ directories
    def shard_dirs(self) -> list[str]:
        return [os.path.join(self._root, s) for s in self._shards]

    def top_dirs(self) -> list[str]:
        """Names of the directories the store keeps in its root (``DirectoryServer`` makes them)."""
        return [*self._shards, _QUEUES, _LOCKS, _POOL, _OWNERS]

    def _root_fd(self) -> int:
        fd = self._fds.get("")
        if fd is None:
            try:
                fd = self._open_root()
            except (FileNotFoundError, NotADirectoryError):
                raise BackendUnavailableError(
                    f"{self.backend}: staging directory {self._root!r} is gone (server stopped?)"
                ) from None
            fd = self._keep("", fd)
        return fd

    def _open_root(self) -> int:
        if self._node is None:  # the user's own root: usable whatever its mode
            return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        top = os.open(self._cfg.server_address, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = _open_dir(top, self._node, self._root, self._uid, create=False)
        finally:
            os.close(top)
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no staging directory for this node", self._root)
        return fd

    def _keep(self, rel: str, fd: int) -> int:
        kept = self._fds.setdefault(rel, fd)
        if kept != fd:  # another thread opened it first
            os.close(fd)
        return kept

    def _dir(self, rel: str, create: bool = True) -> int | None:
        """The checked, cached fd of a top or queue directory (None: missing, not ``create``)."""
        fd = self._fds.get(rel)
        if fd is not None:
            return fd
        parent, _, name = rel.rpartition("/")
        pfd = self._dir(parent, create) if parent else self._root_fd()
        if pfd is None:
            return None
        fd = _open_dir(pfd, name, f"{self._root}/{rel}", self._uid, create)
        return None if fd is None else self._keep(rel, fd)

    def _forget(self) -> None:
        self._stale.extend(self._fds.values())
        self._fds.clear()

    def _locate(self, key: str) -> tuple[str, list[str], str]:
        """(shard, intermediate directories, file name) of ``key``."""
        shard = self._shards[xxhash.xxh3_64_intdigest(key.encode("utf-8")) % self._nshards]
        *dirs, name = key_to_relpath(key).split("/")
        return shard, dirs, name

    def _open_dirs(self, base: str, dirs: list[str], create: bool) -> tuple[int | None, int]:
        """(fd of ``base/dirs...``, the same fd if the caller must close it, else -1)."""
        fd = self._dir(base, create)
        if fd is None or not dirs:
            return fd, -1
        cur, rel = fd, base
        for comp in dirs:
            rel = f"{rel}/{comp}"
            try:
                nxt = _open_dir(cur, comp, f"{self._root}/{rel}", self._uid, create)
            finally:
                if cur != fd:
                    os.close(cur)
            if nxt is None:
                return None, -1
            cur = nxt
        return cur, cur

    def _path(self, key: str) -> str:
        """Where ``key``'s file is (for messages and tests; never opened by this path)."""
        validate_key(key)
        shard, dirs, name = self._locate(key)
        return "/".join([self._root, shard, *dirs, name])

    # ------------------------------------------------------------------ writing
    def _publish(
        self, base: str, dirs: list[str], name: str, parts: Parts, what: str, swap: bool
    ) -> None:
        size = sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in parts)
        for attempt in (0, 1):
            try:
                dfd, own = self._open_dirs(base, dirs, create=True)
                try:
                    self._publish_in(dfd, name, parts, size, swap, (base, dirs, name))
                finally:
                    if own >= 0:
                        os.close(own)
                return
            except FileNotFoundError:  # a directory removed under us (clear(), stop)
                if attempt:
                    raise BackendUnavailableError(
                        f"{self.backend}: writing {what} failed: staging directory "
                        f"{self._root!r} is gone (server stopped?)"
                    ) from None
                self._forget()
            except OSError as exc:
                if exc.errno in _FULL and not attempt and self._empty_pool():
                    continue  # the pool's files held the space
                raise self._write_error(
                    exc, what, "/".join([self._root, base, *dirs, name])
                ) from exc

    def _write_error(self, exc: OSError, what: str, path: str) -> Exception:
        if exc.errno in _FULL:
            try:
                sv = os.statvfs(self._root_fd())
                capacity = (
                    f"{_human(sv.f_frsize * sv.f_blocks)}, {_human(sv.f_frsize * sv.f_bavail)} free"
                )
            except (OSError, BackendUnavailableError):
                capacity = "unknown"
            full = StoreFullError(
                f"{self.backend} store {self._root!r}", capacity, f"writing {what}: {exc.strerror}"
            )
            full.errno = exc.errno  # still an OSError(ENOSPC) (strerror unset: keeps the message)
            return full
        return type(exc)(exc.errno, f"{self.backend}: writing {what} failed: {exc.strerror}", path)

    def _publish_in(
        self, dfd: int, name: str, parts: Parts, size: int, swap: bool, loc: tuple
    ) -> None:
        tmp = f"{_TMP}{_unique()}"
        fd = None
        if self._recycle and size >= _RECYCLE_MIN:
            fd = self._claim_recycled(size, dfd, tmp)
        elif swap and self._swap and size < _RECYCLE_MIN:
            fd = self._claim(dfd, _SPARE + name, dfd, tmp)
        reused = fd is not None
        if fd is None:
            tmp = f"{_TMP}{_unique()}"  # a failed claim's name may still be taken
            fd = os.open(tmp, _O_NEW, 0o600, dir_fd=dfd)
        try:
            try:
                if not reused and self._prealloc and size:
                    # Allocated (not delayed-allocation) blocks: ext4 then need not
                    # flush the file when it replaces an existing one, and a full
                    # disk fails here, before any byte is written.
                    os.posix_fallocate(fd, 0, size)
                if isinstance(parts, PendingFrame):
                    _write_streaming(fd, parts)
                else:
                    _write_all(fd, parts, pwrite=reused)
                if reused:
                    os.ftruncate(fd, size)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._install(dfd, tmp, name, size, swap, loc)
        except BaseException:
            _drop(dfd, tmp)
            raise
        if self._fsync:
            os.fsync(dfd)

    def _install(self, dfd: int, tmp: str, name: str, size: int, swap: bool, loc: tuple) -> None:
        """Publish ``tmp`` as ``name``; keep the replaced file for reuse where that pays."""
        small = size < _RECYCLE_MIN
        if (small and swap and self._swap) or (not small and self._recycle and self._exchange):
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                # atomic: readers see the old file or the new one at the key's path
                if not self._exchange(dfd, tmp.encode(), dfd, name.encode(), _RENAME_EXCHANGE):
                    self._retire(dfd, tmp, name, small)
                    return
                if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS):  # not on this fs
                    self._exchange, self._swap = None, False
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except (IsADirectoryError, NotADirectoryError):
            raise UnsafePathError(
                "/".join([self._root, loc[0], *loc[1], loc[2]]),
                "it is a directory, not a value; refusing to replace it",
            ) from None

    def _retire(self, dfd: int, old: str, name: str, small: bool) -> None:
        """The replaced version, now at ``old``: the key's spare, into the pool, or gone."""
        with contextlib.suppress(OSError):
            if small:
                os.rename(old, _SPARE + name, src_dir_fd=dfd, dst_dir_fd=dfd)
                return
            st = os.stat(old, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_size >= _RECYCLE_MIN:
                pfd = self._dir(_POOL)
                os.rename(old, f"{st.st_size:016d}-{_unique()}", src_dir_fd=dfd, dst_dir_fd=pfd)
                self._trim_pool(pfd)
                return
        _drop(dfd, old)

    # ------------------------------------------------------------------ file reuse
    # Creating a file and freeing the one it replaces is most of the cost of a small
    # atomic write on ext4 (1 KiB: ~170 µs against ~35 µs), and allocating fresh
    # tmpfs pages costs more than copying a large value into them. So the replaced
    # file is kept -- a small one as the key's ``.spare-<name>``, a large one in the
    # pool ``simai-free/`` -- and a later write claims it with an atomic rename (one
    # writer wins) and rewrites it only if the fd it opened (O_NOFOLLOW) is a
    # regular file of ours with one link, and the kernel grants a write lease,
    # which it refuses while any process has the file open or mapped. Whatever
    # else is found there (a link, a FIFO, a reader's file) is dropped, unopened
    # or unwritten, and a fresh file is written instead.
    def _claim(self, src_fd: int, src: str, dfd: int, tmp: str) -> int | None:
        try:
            os.rename(src, tmp, src_dir_fd=src_fd, dst_dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            fd = os.open(tmp, _O_REUSE, dir_fd=dfd)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                if _file_problem(os.fstat(fd), self._uid) is None and _unshared(fd):
                    return fd
            except OSError:
                pass
            os.close(fd)
        _drop(dfd, tmp)  # a reader still has it: its copy stays valid, we drop our name
        return None

    def _pool(self, pfd: int) -> list[tuple[int, str]]:
        out = []
        for n in os.listdir(pfd):
            head = n.partition("-")[0]
            if head.isdigit():
                out.append((int(head), n))
        return sorted(out)

    def _trim_pool(self, pfd: int) -> None:
        pool = self._pool(pfd)
        total = sum(s for s, _ in pool)
        while pool and (len(pool) > _POOL_FILES or total > _POOL_BYTES):
            s, n = pool.pop(0)
            total -= s
            _drop(pfd, n)

    def _empty_pool(self) -> bool:
        if not self._recycle:
            return False
        pfd = self._dir(_POOL)
        names = [n for _, n in self._pool(pfd)]
        for n in names:
            _drop(pfd, n)
        return bool(names)

    def _claim_recycled(self, size: int, dfd: int, tmp: str) -> int | None:
        pfd = self._dir(_POOL)
        for have, name in self._pool(pfd):
            if size <= have < 2 * size:
                return self._claim(pfd, name, dfd, tmp)
        return None

    # ------------------------------------------------------------------ reading
    def _load(self, dfd: int, name: str, loc: tuple) -> Buffer | None:
        for attempt in range(100):
            try:
                fd = os.open(name, _O_READ, dir_fd=dfd)
                break
            except (FileNotFoundError, NotADirectoryError):
                return None
            except BlockingIOError:
                # a writer's lease on a file that is leaving the key's path: microseconds
                if attempt == 99:
                    raise
                time.sleep(1e-4)
            except OSError as exc:
                if exc.errno in _PLANTED:
                    raise UnsafePathError(
                        "/".join([self._root, loc[0], *loc[1], loc[2]]),
                        f"{_what_is(dfd, name)}, not a file this store wrote",
                    ) from None
                raise
        try:
            st = os.fstat(fd)
            problem = _file_problem(st, self._uid)
            if problem:
                raise UnsafePathError("/".join([self._root, loc[0], *loc[1], loc[2]]), problem)
            size = st.st_size
            if self._mmap and size >= _MMAP_MIN:
                # Private, copy-on-write map of an immutable published file: no
                # copy, and arrays built on it are still writable. (No MAP_POPULATE:
                # on a writable private map it would copy every page up front.)
                mm = mmap.mmap(
                    fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
                )
                with contextlib.suppress(OSError):  # map all pages at once (Linux >= 5.14)
                    mm.madvise(_MADV_POPULATE_READ)
                return mm
            return _read_all(fd, size)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ Transport
    def put(self, key: str, value: Parts, owner: str = "") -> None:
        validate_key(key)
        if owner:
            self._record(owner, key)
        shard, dirs, name = self._locate(key)
        self._publish(shard, dirs, name, value, f"key {key!r}", swap=True)

    def get(self, key: str) -> Buffer | None:
        validate_key(key)
        loc = self._locate(key)
        dfd, own = self._open_dirs(loc[0], loc[1], create=False)
        if dfd is None:
            return None
        try:
            return self._load(dfd, loc[2], loc)
        finally:
            if own >= 0:
                os.close(own)

    def exists(self, key: str) -> bool:
        validate_key(key)
        shard, dirs, name = self._locate(key)
        dfd, own = self._open_dirs(shard, dirs, create=False)
        if dfd is None:
            return False
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        finally:
            if own >= 0:
                os.close(own)
        if stat.S_ISREG(st.st_mode):
            return True
        raise UnsafePathError(
            "/".join([self._root, shard, *dirs, name]),
            f"it is {_kind(st.st_mode)}, not a value this store wrote",
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        shard, dirs, name = self._locate(key)
        dfd, own = self._open_dirs(shard, dirs, create=False)
        if dfd is None:
            return
        try:
            if self._swap:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_SPARE + name, dir_fd=dfd)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return
            if stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(
                    "/".join([self._root, shard, *dirs, name]),
                    "it is a directory, not a value; refusing to remove it",
                )
            if self._recycle and stat.S_ISREG(st.st_mode) and st.st_size >= _RECYCLE_MIN:
                # what goes to the pool is checked again, on its fd, before any reuse
                pfd = self._dir(_POOL)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(
                        name, f"{st.st_size:016d}-{_unique()}", src_dir_fd=dfd, dst_dir_fd=pfd
                    )
                    self._trim_pool(pfd)
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dfd)  # a link or FIFO itself, never what it names
        finally:
            if own >= 0:
                os.close(own)

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for shard in self._shards:
            fd = self._dir(shard, create=False)
            if fd is None:
                continue
            for rel in self._walk(fd, shard, ""):
                key = relpath_to_key(rel)
                if key is not None and key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def _walk(self, fd: int, base: str, rel: str) -> Iterator[str]:
        with os.scandir(fd) as it:
            entries = list(it)
        for e in entries:
            if e.name.startswith("."):
                continue
            r = f"{rel}/{e.name}" if rel else e.name
            if e.name.endswith("~") and e.is_dir(follow_symlinks=False):
                try:
                    sub = _open_dir(fd, e.name, f"{self._root}/{base}/{r}", self._uid, False)
                except UnsafePathError:
                    continue  # not ours: holds no key of this store
                if sub is not None:
                    try:
                        yield from self._walk(sub, base, r)
                    finally:
                        os.close(sub)
            elif e.is_file(follow_symlinks=False):
                yield r

    def wait(self, key: str, timeout: float) -> bool:
        return any(self.exists(key) for _ in _backoff(time.monotonic() + timeout))

    # ------------------------------------------------------------------ ownership
    # Each owner (a DataStore name) has a directory simai-owners/<name>/ with one
    # entry per key it wrote: a file named by a hash of the key, holding the key.
    # A process creates an entry at most once per (owner, key), before the value
    # is published; it rechecks (one stat) that the directory is still the one it
    # wrote into, since clear(owner) in another process removes it.
    def _record(self, owner: str, key: str) -> None:
        rec = self._recorded.get(owner)
        ofd = self._dir(_OWNERS)
        if rec is not None and key in rec[2]:
            try:
                st = os.stat(rec[0], dir_fd=ofd, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == rec[1]:
                    return
            except FileNotFoundError:
                pass
        comp = rec[0] if rec is not None else name_to_component(owner)
        for attempt in (0, 1):
            dfd = _open_dir(ofd, comp, f"{self._root}/{_OWNERS}/{comp}", self._uid, True)
            try:
                st = os.fstat(dfd)
                if rec is None or rec[1] != (st.st_dev, st.st_ino):
                    rec = self._recorded[owner] = [comp, (st.st_dev, st.st_ino), set()]
                data = key.encode("utf-8")
                entry = hashlib.blake2b(data, digest_size=20).hexdigest()
                try:
                    fd = os.open(entry, _O_NEW, 0o600, dir_fd=dfd)
                except FileExistsError:
                    pass
                except FileNotFoundError:  # removed by a clear(owner) just now
                    if attempt:
                        raise
                    continue
                else:
                    try:
                        os.write(fd, data)
                    finally:
                        os.close(fd)
                if len(rec[2]) > 100_000:  # bounded: re-creating an entry is harmless
                    rec[2].clear()
                rec[2].add(key)
                return
            finally:
                os.close(dfd)

    def _read_entry(self, dfd: int, name: str) -> str | None:
        raw = self._read_small(dfd, name)
        try:
            return validate_key(raw.decode("utf-8")) if raw is not None else None
        except ValueError:  # not UTF-8, or not a key: not an entry this store wrote
            return None

    def _read_small(self, dfd: int, name: str) -> bytes | None:
        """Up to ``_MAX_ENTRY`` bytes of a file we own in ``dfd``; None when it is
        missing, unreadable, or not ours (another user's file is never trusted)."""
        try:
            fd = os.open(name, _O_READ, dir_fd=dfd)
        except OSError:
            return None
        try:
            if _file_problem(os.fstat(fd), self._uid):
                return None
            return os.read(fd, _MAX_ENTRY)
        except OSError:
            return None
        finally:
            os.close(fd)

    def clear(self, owner: str | None = None) -> None:
        """``None``: every key, message and pooled file. An owner: the keys in its
        index that no other owner's index lists (a key several stores wrote goes
        with the last of their ``clear``), its index, and messages addressed to it."""
        if owner is None:
            self._clear_all()
            return
        comp = name_to_component(owner)
        ofd = self._dir(_OWNERS)
        dfd = _open_dir(ofd, comp, f"{self._root}/{_OWNERS}/{comp}", self._uid, False)
        self._recorded.pop(owner, None)
        errors: list[Exception] = []
        if dfd is not None:
            try:
                others = [n for n in os.listdir(ofd) if n != comp]
                for entry in os.listdir(dfd):
                    key = self._read_entry(dfd, entry)
                    if key is not None and not any(self._lists(ofd, o, entry) for o in others):
                        try:
                            self.delete(key)
                        except (OSError, UnsafePathError) as exc:
                            errors.append(exc)
                    _drop(dfd, entry)
            finally:
                os.close(dfd)
            with contextlib.suppress(OSError):
                os.rmdir(comp, dir_fd=ofd)
        self._clear_queues(lambda q: q.endswith(f"->{owner}"))
        if errors:
            raise errors[0]

    def _lists(self, ofd: int, other: str, entry: str) -> bool:
        try:
            os.stat(f"{other}/{entry}", dir_fd=ofd, follow_symlinks=False)
        except OSError:
            return False
        return True

    def _clear_queues(self, addressed: Any) -> None:
        qfd = self._dir(_QUEUES)
        for comp in os.listdir(qfd):
            try:
                fd = _open_dir(qfd, comp, f"{self._root}/{_QUEUES}/{comp}", self._uid, False)
            except UnsafePathError:
                continue
            if fd is None:
                continue
            try:
                raw = self._read_small(fd, _QUEUE_NAME)
                if raw is not None and addressed(raw.decode("utf-8", "replace")):
                    # the directory stays: receivers elsewhere hold its fd
                    _purge(fd, keep=frozenset([_QUEUE_NAME]))
            finally:
                os.close(fd)

    def _clear_all(self) -> None:
        for shard in self._shards:
            fd = self._dir(shard, create=False)
            if fd is not None:
                _purge(fd)  # shard directories stay: other processes hold their fds
        self._clear_queues(lambda q: True)
        for top in (_POOL, _OWNERS):
            fd = self._dir(top, create=False)
            if fd is not None:
                _purge(fd)
        self._recorded.clear()

    # ------------------------------------------------------------------ messaging
    def _queue(self, queue: str) -> str:
        if not isinstance(queue, str):
            validate_key(queue, "queue name")
        rel = f"{_QUEUES}/{name_to_component(queue)}"
        if rel not in self._fds:
            fd = self._dir(rel)
            try:  # its full name, for clear(owner): long names are hashed
                nfd = os.open(_QUEUE_NAME, _O_NEW, 0o600, dir_fd=fd)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(nfd, queue.encode("utf-8"))
                finally:
                    os.close(nfd)
        return rel

    def push(self, queue: str, value: Parts) -> None:
        # Names sort by time, then writer: FIFO per sender, roughly FIFO overall.
        name = f"{time.time_ns():020d}-{_unique()}"
        self._publish(self._queue(queue), [], name, value, f"a message to {queue!r}", swap=False)

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        rel = self._queue(queue)
        for _ in _backoff(time.monotonic() + timeout):
            d = self._dir(rel)
            names = sorted(n for n in os.listdir(d) if not n.startswith("."))
            for name in names:
                claimed = f".claimed-{_unique()}"
                try:
                    os.rename(name, claimed, src_dir_fd=d, dst_dir_fd=d)  # one receiver wins
                except FileNotFoundError:
                    continue
                try:
                    return self._load(d, claimed, (rel, [], name))
                finally:
                    _drop(d, claimed)
        return None

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None) -> Iterator[None]:
        if not isinstance(name, str):
            validate_key(name, "lock name")
        d = self._dir(_LOCKS)
        fname = name_to_component(name) + ".lock"
        path = f"{self._root}/{_LOCKS}/{fname}"
        try:
            fd = os.open(fname, _O_LOCK, 0o600, dir_fd=d)
        except OSError as exc:
            if exc.errno in _PLANTED:
                raise UnsafePathError(path, f"{_what_is(d, fname)}, not a lock file") from None
            raise
        try:
            problem = _file_problem(os.fstat(fd), self._uid)
            if problem:
                raise UnsafePathError(path, problem)
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
        _close_all(self._fds, self._stale)

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FilesystemTransport:
        return cls(cls.Config.model_validate(config))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._root!r}, nshards={self._nshards})"


# ---------------------------------------------------------------- the server side
def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _DirectoryLock:
    """One live ``ServerManager`` per staging directory.

    ``flock`` on ``.simai-datastore.lock`` in the root (released by the kernel when
    the holder dies). Where the file system has no ``flock`` (some Lustre/GPFS
    mounts), an ``O_EXCL``-created ``.simai-datastore.owner`` naming host and PID;
    a stale one (same host, PID gone) is taken over, one from another host is
    reported for the user to remove.
    """

    def __init__(self, root_fd: int, root: str):
        self._dfd = root_fd
        self._root = root
        self._fd: int | None = None
        self._me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "nonce": os.urandom(8).hex(),
        }

    def _in_use(self, holder: dict[str, Any] | None, hint: str = "") -> BackendUnavailableError:
        who = (
            f"host {holder.get('host')!r}, PID {holder.get('pid')}"
            if isinstance(holder, dict)
            else "another process"
        )
        return BackendUnavailableError(
            f"staging directory {self._root!r} is in use by another ServerManager ({who}); "
            f"stop it first or choose another server_address{hint}"
        )

    def _holder(self, name: str) -> dict[str, Any] | None:
        try:
            fd = os.open(name, _O_READ, dir_fd=self._dfd)
        except OSError:
            return None
        try:
            info = json.loads(os.read(fd, 4096) or b"null")
            return info if isinstance(info, dict) else None
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def acquire(self) -> None:
        uid = os.geteuid()
        path = f"{self._root}/{_LOCK_FILE}"
        for _ in range(5):
            try:
                fd = os.open(_LOCK_FILE, _O_LOCK, 0o600, dir_fd=self._dfd)
            except OSError as exc:
                if exc.errno in _PLANTED:
                    raise UnsafePathError(path, f"{_what_is(self._dfd, _LOCK_FILE)}") from None
                raise
            try:
                problem = _file_problem(os.fstat(fd), uid)
                if problem:
                    raise UnsafePathError(path, problem)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._in_use(self._holder(_LOCK_FILE)) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _NO_FLOCK:
                    raise
                self._acquire_exclusive()
                return
            except BaseException:
                os.close(fd)
                raise
            # the file we locked must still be the one at the path (a holder that
            # was stopping removed it between our open and our flock: try again)
            try:
                same = os.path.samestat(
                    os.fstat(fd), os.stat(_LOCK_FILE, dir_fd=self._dfd, follow_symlinks=False)
                )
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(self._me).encode(), 0)
                self._fd = fd
                return
            os.close(fd)
        raise self._in_use(None)

    def _acquire_exclusive(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(_OWNER_FILE, _O_NEW, 0o600, dir_fd=self._dfd)
            except FileExistsError:
                holder = self._holder(_OWNER_FILE)
                if (
                    holder is None
                    or holder.get("host") != self._me["host"]
                    or _pid_alive(holder.get("pid"))
                ):
                    raise self._in_use(
                        holder,
                        f" (if it is dead, remove {self._root}/{_OWNER_FILE})",
                    ) from None
                self._take_over(holder)
                continue
            try:
                os.write(fd, json.dumps(self._me).encode())
            finally:
                os.close(fd)
            self._fd = -1
            return
        raise self._in_use(None)

    def _take_over(self, stale: dict[str, Any]) -> None:
        """Remove a dead holder's file, and only that file (another starter may race us)."""
        aside = f".stale-{_unique()}"
        try:
            os.rename(_OWNER_FILE, aside, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
        except FileNotFoundError:
            return
        if self._holder(aside) != stale:  # a live starter's file: put it back
            with contextlib.suppress(OSError):
                os.link(aside, _OWNER_FILE, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
        _drop(self._dfd, aside)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        name = _LOCK_FILE if fd >= 0 else _OWNER_FILE
        if self._holder(name) == self._me:
            _drop(self._dfd, name)
        if fd >= 0:
            os.close(fd)


class DirectoryServer:
    """Creates the staging directory and holds it; on stop removes only what it created.

    A staging directory has one live ``ServerManager`` at a time (see
    :class:`_DirectoryLock`): a second one on the same directory is refused with
    ``BackendUnavailableError`` naming the holder. Directories already inside it
    are used only if they are ours and not group/world-writable.
    """

    default_parent = None  # None: the current directory (shared across nodes on HPC systems)

    def __init__(
        self,
        config: FilesystemConfig,
        transport_cls: type[FilesystemTransport],
        root_fd: int | None = None,
    ):
        self.config = config
        self._transport_cls = transport_cls
        self._created: list[str] = []
        # a checked fd of an existing root, handed over by the per-node server
        self._given_fd = root_fd
        self._root_fd: int | None = None
        self._lock: _DirectoryLock | None = None
        self._nodes: _NodeDirectories | None = None
        self.root: str | None = None

    def start(self) -> FilesystemConfig:
        if self.config.nodes and self.config.per_node_dirs:
            nodes = _NodeDirectories(self.config, self._transport_cls, self._parent())
            cfg = nodes.start()  # cleans up after itself when it fails
            self._nodes = nodes
            return cfg
        root = self.config.server_address
        made_root = False
        if root is None:
            parent = self._parent()
            root = tempfile.mkdtemp(
                prefix=".simai-stage-" if parent == os.getcwd() else "simai-stage-", dir=parent
            )
            made_root = True
        elif not os.path.exists(root):
            os.makedirs(root, mode=0o700)
            made_root = True
        elif not os.path.isdir(root):
            raise NotADirectoryError(errno.ENOTDIR, "server_address is not a directory", root)
        if made_root:
            self._created.append(root)
        try:
            fd, self._given_fd = self._given_fd, None
            self._root_fd = (
                fd if fd is not None else os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            )
            self._lock = _DirectoryLock(self._root_fd, root)
            self._lock.acquire()
            cfg = self.config.model_copy(update={"server_address": root})
            transport = self._transport_cls(cfg)
            try:
                names = transport.top_dirs()
            finally:
                transport.close()
            uid = os.geteuid()
            for name in names:
                try:
                    os.mkdir(name, 0o700, dir_fd=self._root_fd)
                    if not made_root:
                        self._created.append(os.path.join(root, name))
                except FileExistsError:
                    pass
                fd = _open_dir(self._root_fd, name, os.path.join(root, name), uid, False)
                if fd is None:
                    raise BackendUnavailableError(f"{root}/{name} vanished while starting")
                os.close(fd)
            if made_root:
                fd = os.open(".simai-datastore.json", _O_NEW, 0o600, dir_fd=self._root_fd)
                with os.fdopen(fd, "w") as f:
                    json.dump({"type": cfg.type, "nshards": cfg.nshards, "pid": os.getpid()}, f)
        except BaseException:
            self.stop()
            raise
        self.root = root
        return cfg

    def _default_parent(self) -> str:
        return os.getcwd()

    def _parent(self) -> str:
        return os.environ.get("SIMAI_DATASTORE_DIR") or self._default_parent()

    def alive(self) -> bool:
        if self._nodes is not None:
            return self._nodes.alive()
        return self.root is not None and os.path.isdir(self.root)

    def stop(self) -> None:
        nodes, self._nodes = self._nodes, None
        if nodes is not None:
            nodes.stop()
        if self._given_fd is not None:  # handed over but never started
            os.close(self._given_fd)
            self._given_fd = None
        for d in reversed(self._created):
            shutil.rmtree(d, ignore_errors=True)  # fd-based: follows no link inside
        self._created.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None
        self.root = None


# Runs on a node, through the launcher, with the root and the node's directory name as
# $1 and $2: makes the node's 0700 directory (refusing one that exists: it is someone
# else's), says "ready", then holds it until its stdin ends -- when the manager stops it
# or the Python process that started it dies, even by SIGKILL -- and removes it (and the
# root, if this run made it and nothing else is left in it).
_NODE_DIR = (
    'umask 077; root=$1; dir=$1/$2; keep=$3; made=""; watch=""; '
    '[ -e "$root" ] || { mkdir -p -- "$root" && made=1; }; '
    'if [ -L "$root" ] || [ ! -d "$root" ] || [ ! -O "$root" ]; then '
    'echo "$root is not a directory of ours" >&2; exit 1; fi; '
    'mkdir -m 0700 -- "$dir" || exit 1; '
    'done_() { [ -z "$watch" ] || kill "$watch" 2>/dev/null; rm -rf -- "$dir"; '
    '{ [ "$keep" != keep ] || [ -n "$made" ]; } && rmdir -- "$root" 2>/dev/null; exit 0; }; '
    "trap done_ HUP INT TERM; echo ready; "
    # a background job's stdin is /dev/null unless it is taken from another descriptor
    'exec 3<&0; cat <&3 >/dev/null & watch=$!; wait "$watch"; watch=""; done_'
)


class _NodeDirectories:
    """One staging directory per node, ``root/<node>``: made here (under the same checks
    and per-directory lock as a single store) for nodes that are this machine, or through
    ``launch_prefix`` on each node; on stop only those directories (and a root made for
    them) are removed."""

    def __init__(self, config: FilesystemConfig, transport_cls: type, parent: str):
        self.config = config
        self._transport_cls = transport_cls
        self._parent = parent
        self._servers: list[DirectoryServer] = []
        self._created: list[str] = []
        self._procs: list[Any] = []

    def start(self) -> FilesystemConfig:
        cfg = self.config
        try:
            if cfg.launch_prefix is None:
                remote = [n for n in cfg.nodes if not is_local(n)]
                if remote:
                    raise ValueError(
                        f"nodes: {', '.join(remote)} is not this machine; set launch_prefix "
                        "(e.g. ['ssh', '{host}'] or ['mpiexec', '-n', '1', '-hosts', '{host}']) "
                        "to make its staging directory there"
                    )
                root = self._start_here()
            else:
                root = self._start_through_launcher()
        except BaseException:
            self.stop()
            raise
        return cfg.model_copy(update={"server_address": root})

    def _start_here(self) -> str:
        root = self.config.server_address
        if root is None:
            root = tempfile.mkdtemp(prefix="simai-stage-", dir=self._parent)
            self._created.append(root)
        elif not os.path.exists(root):
            os.makedirs(root, mode=0o700)
            self._created.append(root)
        uid = os.geteuid()
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for node in self.config.nodes:
                path = os.path.join(root, node)
                try:
                    os.mkdir(node, 0o700, dir_fd=top)
                    self._created.append(path)
                except FileExistsError:  # used only if it is ours: checked below, and locked
                    pass
                fd = _open_dir(top, node, path, uid, create=False)
                if fd is None:
                    raise BackendUnavailableError(f"{path} vanished while starting")
                node_cfg = self.config.model_copy(
                    update={"server_address": path, "nodes": None, "launch_prefix": None}
                )
                server = DirectoryServer(node_cfg, self._transport_cls, root_fd=fd)
                self._servers.append(server)
                server.start()
        finally:
            os.close(top)
        return root

    def _start_through_launcher(self) -> str:
        import select
        import subprocess

        root = self.config.server_address
        keep = "keep" if root is not None else "made"
        if root is None:  # the same fresh name on every node, decided here
            root = os.path.join(self._parent, f"simai-stage-{os.urandom(8).hex()}")
        for node in self.config.nodes:
            argv = [a.replace("{host}", node) for a in self.config.launch_prefix]
            proc = spawner.popen(
                [*argv, "sh", "-c", _NODE_DIR, "sh", root, node, keep],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self._procs.append(proc)
        deadline = time.monotonic() + 30
        for node, proc in zip(self.config.nodes, self._procs, strict=True):
            ready = b""
            while not ready.endswith(b"\n") and time.monotonic() < deadline:
                if not select.select([proc.stdout], [], [], 0.5)[0]:
                    continue
                chunk = os.read(proc.stdout.fileno(), 64)
                if not chunk:
                    break
                ready += chunk
            if ready.strip().splitlines()[-1:] != [b"ready"]:
                with contextlib.suppress(Exception):
                    proc.kill()
                err = b""
                with contextlib.suppress(Exception):
                    err = proc.communicate(timeout=5)[1]
                raise BackendUnavailableError(
                    f"cannot make the staging directory {root}/{node} on node {node}: "
                    f"{err.decode(errors='replace').strip() or 'no answer within 30 s'}"
                )
        return root

    def alive(self) -> bool:
        if self._procs:
            return all(p.poll() is None for p in self._procs)
        return bool(self._servers) and all(s.alive() for s in self._servers)

    def stop(self) -> None:
        procs, self._procs = self._procs, []
        for p in procs:  # each node removes its directory when its stdin ends
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except Exception:
                p.kill()
                p.wait(5)
            for stream in (p.stdout, p.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        for d in reversed(self._created):
            shutil.rmtree(d, ignore_errors=True)  # fd-based: follows no link inside
        self._created.clear()


FilesystemTransport.Server = DirectoryServer
