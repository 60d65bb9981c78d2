"""``redis`` backend: one server, several servers (client-side sharding) or a Redis Cluster.

Layout on the server, for a user key ``k`` (stored under its own name) and ``T``,
a hash tag that puts every internal key of ``k`` in ``k``'s Redis Cluster slot
(empty outside a cluster):

* ``k``: the framed value, or for values above ``chunk_size`` a small manifest
  naming a version, a chunk count and the total length;
* ``T\\0c\\0<version>\\0<i>\\0k``: the chunks of that version;
* ``T\\0w``: a hash ``key -> owners`` (the names of the stores that wrote it);
* ``T\\0o\\0<owner>``: the set of keys an owner wrote; ``clear(owner)`` takes the
  owner off each, and removes those no other owner wrote;
* ``\\0q\\0<queue>`` (lists) and ``\\0lock\\0<name>``: messaging and locks.

User keys cannot contain NUL, so internal keys never collide with them.

Every write (and every delete) is one Lua script, called by its SHA, which
replaces the value, deletes the old version's chunks and updates the owner
records together; a large value's chunks travel in the same ``MULTI``/``EXEC`` as
that script. Readers
therefore never see a manifest whose chunks are gone, overwrites and deletes
never leave chunks behind, and a client that dies mid-write leaves nothing
(Redis discards an unfinished transaction). A full server (``maxmemory``) refuses
the whole transaction: nothing partial is visible and older keys stay readable.
A reader fetches a large value's chunks in one transaction with a server-side
check that its manifest is still in place and that the chunks add up to the
declared length, so it never assembles half of two versions, and a forged
manifest is refused before anything is allocated.

Every call runs on a connection of the calling thread whose socket timeout comes
from the caller's timeout (see :meth:`RedisTransport.bounded`), so a silent server
becomes ``BackendUnavailableError`` instead of a hang.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import xxhash

from simai.datastore._keys import InvalidKeyError, validate_key
from simai.datastore._nodes import is_local as _is_local
from simai.datastore._nodes import spawner as _spawner
from simai.datastore.config import RedisConfig
from simai.datastore.errors import BackendUnavailableError, CorruptValueError, StoreFullError
from simai.datastore.registry import require
from simai.datastore.serialize import Buffer, Parts, encoded_size, join_parts

__all__ = ["RedisServer", "RedisTransport"]

_MANIFEST = b"\x00SIMAI-CHUNKED\x00"
_MANIFEST_BODY = re.compile(rb"([0-9a-f]{16}):([0-9]{1,12}):([0-9]{1,20})")
# Redis refuses bulk strings above proto-max-bulk-len (512 MiB by default): no
# real chunk is larger, so a manifest claiming more bytes per chunk is forged.
_MAX_CHUNK = 512 << 20
_QUEUE = "\x00q\x00"
_LOCK = "\x00lock\x00"
_MIN_SOCKET_TIMEOUT = 1.0
# Manifests claiming more chunks than this (2 GiB at the default chunk size) are
# checked on the server before a GET per chunk is even queued.
_PRECHECK_CHUNKS = 4096  # a floor under short caller timeouts: a busy but live server answers

# Owner records: ``T\0w`` maps a key to the names of the stores that wrote it, each
# followed by NUL ("alpha\0beta\0"); ``T\0o\0<owner>`` is the set of keys an owner
# wrote. A key goes when the last of its owners clears (``clear(owner)``).
# Shared by the scripts below: delete the chunks of manifest ``m`` of key ``k``
# (stopping at the first one missing: ours are all there, a forged count is not),
# and add ``owner`` to the records of ``k``.
_LUA_COMMON = r"""
local MAGIC = '\0SIMAI-CHUNKED\0'
local function drop(m, k, T)
  local ver, n = string.match(string.sub(m, #MAGIC + 1), '^(%x+):(%d+):%d+$')
  if not ver then return end
  for i = 0, tonumber(n) - 1 do
    if redis.call('DEL', T .. '\0c\0' .. ver .. '\0' .. i .. '\0' .. k) == 0 then return end
  end
end
local function old_manifest(k)
  if redis.call('GETRANGE', k, 0, #MAGIC - 1) == MAGIC then return redis.call('GET', k) end
  return nil
end
local function record(k, owners, T, owner)
  if owner == '' then return end
  local prev = redis.call('HGET', owners, k)
  if not prev then
    redis.call('HSET', owners, k, owner .. '\0')
  elseif not string.find('\0' .. prev, '\0' .. owner .. '\0', 1, true) then
    redis.call('HSET', owners, k, prev .. owner .. '\0')
  else
    return
  end
  redis.call('SADD', T .. '\0o\0' .. owner, k)
end
"""

# A value of at most chunk_size (the common case: no transaction around it).
# KEYS: k, T\0w   ARGV: value, owner, T
# The SET is the first write: on a full server (or a key of another type) the
# script fails before anything changed.
_LUA_WRITE_SMALL = (
    _LUA_COMMON
    + r"""
local k, owners, T = KEYS[1], KEYS[2], ARGV[3]
local old = old_manifest(k)
redis.call('SET', k, ARGV[1])
if old then drop(old, k, T) end
record(k, owners, T, ARGV[2])
return 1
"""
)

# A chunked value, after its chunks in the same MULTI/EXEC.
# KEYS: k, T\0w   ARGV: manifest, owner, T, new version, new chunk count
_LUA_WRITE = (
    _LUA_COMMON
    + r"""
local k, owners = KEYS[1], KEYS[2]
local value, owner, T, ver, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ok, err = pcall(function()
  local old = old_manifest(k)  -- WRONGTYPE if k holds another application's list, ...
  redis.call('SET', k, value)
  if old then drop(old, k, T) end
  record(k, owners, T, owner)
end)
if not ok then
  -- the new version's chunks (written just before, in this transaction) must not stay
  for i = 0, tonumber(n) - 1 do redis.call('DEL', T .. '\0c\0' .. ver .. '\0' .. i .. '\0' .. k) end
  return redis.error_reply(type(err) == 'table' and err.err or tostring(err))
end
return 1
"""
)

# KEYS: k, T\0w   ARGV: T
_LUA_DELETE = (
    _LUA_COMMON
    + r"""
local k, owners, T = KEYS[1], KEYS[2], ARGV[1]
local old = old_manifest(k)
local n = redis.call('DEL', k)
if old then drop(old, k, T) end
local prev = redis.call('HGET', owners, k)
if prev then
  redis.call('HDEL', owners, k)
  for o in string.gmatch(prev, '(%Z+)%z') do redis.call('SREM', T .. '\0o\0' .. o, k) end
end
return n
"""
)

# KEYS: T\0w, T\0o\0owner   ARGV: T, owner, keys...
# Takes ``owner`` off each key's records; a key no other owner wrote goes.
_LUA_CLEAR_OWNED = (
    _LUA_COMMON
    + r"""
local owners, index, T, owner = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
for j = 3, #ARGV do
  local k = ARGV[j]
  local prev = redis.call('HGET', owners, k)
  local at = prev and string.find('\0' .. prev, '\0' .. owner .. '\0', 1, true)
  if at then
    local rest = string.sub(prev, 1, at - 1) .. string.sub(prev, at + #owner + 1)
    if rest == '' then
      local old = old_manifest(k)
      redis.call('DEL', k)
      if old then drop(old, k, T) end
      redis.call('HDEL', owners, k)
    else
      redis.call('HSET', owners, k, rest)
    end
  end
  redis.call('SREM', index, k)
end
return 1
"""
)

# KEYS: k   ARGV: manifest, T, version, count
# -> total bytes of the chunks; -1: k no longer holds this manifest; -2: a chunk is missing
_LUA_CHECK = r"""
local k, manifest, T, ver, n = KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('GET', k) ~= manifest then return -1 end
local total = 0
for i = 0, n - 1 do
  local len = redis.call('STRLEN', T .. '\0c\0' .. ver .. '\0' .. i .. '\0' .. k)
  if len == 0 then return -2 end
  total = total + len
end
return total
"""

_SCRIPTS = {
    "write-small": _LUA_WRITE_SMALL,
    "write": _LUA_WRITE,
    "delete": _LUA_DELETE,
    "clear": _LUA_CLEAR_OWNED,
    "check": _LUA_CHECK,
}


def _import_redis():
    return require("redis", "redis", "pip install 'simai-datastore[redis]'")


def _check_owner(owner: str) -> None:
    if "\x00" in owner:  # owner records are NUL-separated
        raise InvalidKeyError(f"store names must not contain NUL characters: {owner!r:.80}")


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


class _Translate:
    """``with``-block that turns redis-py errors into our clear ones (cheaper than a generator)."""

    __slots__ = ("_t",)

    def __init__(self, transport: RedisTransport):
        self._t = transport

    def __enter__(self) -> None:
        return None

    def __exit__(self, et, exc, tb) -> bool:
        e = self._t._r.exceptions
        if exc is not None and isinstance(exc, (e.RedisError, e.RedisClusterException)):
            new = self._t._translate(exc)
            if new is not exc:
                raise new from exc
        return False


class _Bound:
    """Context of :meth:`RedisTransport.bounded`: sets this thread's deadline."""

    __slots__ = ("_loc", "_prev", "_timeout")

    def __init__(self, loc: threading.local, timeout: float):
        self._loc = loc
        self._timeout = timeout

    def __enter__(self) -> None:
        self._prev = getattr(self._loc, "deadline", None)
        self._loc.deadline = time.monotonic() + max(self._timeout, 0.0)

    def __exit__(self, *exc: object) -> None:
        self._loc.deadline = self._prev


class _SlotTags:
    """For each Redis Cluster slot, a short hash tag ``{...}`` that maps to it."""

    def __init__(self, keyslot):
        self._keyslot = keyslot
        self._tags: dict[int, str] = {}
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, key: str) -> str:
        slot = self._keyslot(key)
        tag = self._tags.get(slot)
        if tag is None:
            with self._lock:  # fills the table lazily: ~10 candidates per slot on average
                while slot not in self._tags:
                    cand = format(self._next, "x")
                    self._next += 1
                    self._tags.setdefault(self._keyslot(cand), "{" + cand + "}")
                tag = self._tags[slot]
        return tag


class RedisTransport:
    backend = "redis"
    Config = RedisConfig

    def __init__(self, config: RedisConfig):
        redis = _import_redis()
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._cfg = config
        addrs = config.addresses()
        if not addrs:
            raise ValueError(
                "redis: server_address is required ('host:port[,...]'); ServerManager fills it in"
            )
        self._addrs = addrs
        self._chunk = config.chunk_size
        self._r = redis
        self._cluster = config.is_clustered
        # A dropped connection (server restarted) is retried once; a timeout is not,
        # so the caller's timeout bounds the call.
        self._retry = lambda: Retry(  # one Retry per client: it holds state
            ExponentialBackoff(cap=0.2, base=0.02), 1, supported_errors=(redis.ConnectionError,)
        )
        # socket timeouts a thread's connections use: 1, 2, 4 ... s, then socket_timeout
        top = config.socket_timeout
        self._levels = sorted({*(2.0**i for i in range(12) if 2.0**i < top), top})
        self._err = _Translate(self)
        self._local = threading.local()
        self._all: weakref.WeakSet = weakref.WeakSet()  # every thread's clients, for close()
        self._tags: _SlotTags | None = None
        self._shas: dict[str, str] = {}
        if self._cluster:  # a cluster client checks the cluster now: fail here, clearly
            self._clients(top)

    # ------------------------------------------------------------------ connections
    def bounded(self, timeout: float) -> _Bound:
        """Inside the block, this thread's calls fail after ~``timeout`` s of silence
        (at least 1 s), whatever the server does."""
        return _Bound(self._local, timeout)

    def _level(self) -> float:
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return self._levels[-1]
        left = max(deadline - time.monotonic(), _MIN_SOCKET_TIMEOUT)
        level = self._levels[0]
        for lv in self._levels:  # the longest timeout that still ends by the deadline
            if lv <= left:
                level = lv
        return level

    def _clients(self, level: float) -> list[Any]:
        """This thread's clients (one per server, or one cluster client) for ``level``."""
        loc = self._local
        if getattr(loc, "pid", None) != os.getpid():  # a forked child must not share a socket
            loc.pid = os.getpid()
            loc.by_level = {}
        clients = loc.by_level.get(level)
        if clients is None:
            redis = self._r
            kw = dict(
                password=self._cfg.password,
                **self._cfg.client_options(),  # ACL user, TLS
                socket_timeout=level,
                socket_connect_timeout=min(self._cfg.connect_timeout, level),
                retry=self._retry(),
            )
            if self._cluster:
                from redis.cluster import ClusterNode, RedisCluster

                with self._err:
                    clients = [
                        RedisCluster(
                            startup_nodes=[ClusterNode(h, p) for h, p in self._addrs], **kw
                        )
                    ]
                if self._tags is None:
                    self._tags = _SlotTags(clients[0].keyslot)
            else:
                # one connection per thread: no pool checkout and no lock per command
                # (it connects now, so a refused password is reported here)
                with self._err:
                    clients = [
                        redis.Redis(host=h, port=p, single_connection_client=True, **kw)
                        for h, p in self._addrs
                    ]
            loc.by_level[level] = clients
            self._all.update(clients)
        return clients

    def _client(self, key: str):
        clients = self._clients(self._level())
        if len(clients) == 1:
            return clients[0]
        return clients[xxhash.xxh3_64_intdigest(key.encode("utf-8")) % len(clients)]

    def _tag(self, key: str) -> str:
        return self._tags(key) if self._cluster else ""

    def _where(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self._addrs)

    def _capacity(self) -> str:
        if self._cfg.maxmemory:
            return f"maxmemory {self._cfg.maxmemory}"
        try:  # a server someone else configured: ask it
            info = self._clients(self._levels[0])[0].info("memory")
            return f"maxmemory {info.get('maxmemory_human', '?')}"
        except Exception:
            return "its maxmemory"

    def _translate(self, exc: Exception) -> Exception:
        e = self._r.exceptions
        text = str(exc)
        if (
            isinstance(exc, e.AuthenticationError)
            or "WRONGPASS" in text
            or "NOAUTH" in text
            or "username-password" in text  # cluster client, wrong password
            or "already authenticated" in text  # cluster client, no password (HELLO)
        ):
            return BackendUnavailableError(
                f"redis at {self._where()}: authentication failed (wrong or missing password): {exc}"
            )
        if isinstance(exc, e.OutOfMemoryError) or (
            isinstance(exc, e.ResponseError) and ("OOM" in text or "'maxmemory'" in text)
        ):
            return StoreFullError(f"redis at {self._where()}", self._capacity(), text[:200])
        if (
            isinstance(
                exc,
                (e.ConnectionError, e.TimeoutError, e.ClusterDownError, e.RedisClusterException),
            )
            or "ClusterDown" in type(exc).__name__
        ):
            return BackendUnavailableError(
                f"redis at {self._where()} is unreachable or not answering: {exc}"
            )
        return exc

    def _command(self, client, *args: Any) -> Any:
        """One command on ``client``'s own connection, past redis-py's per-command
        wrapping (retry closures, metrics: ~5 µs a call, as much as the round trip
        of a small value). The connection's socket timeout is the client's level, so
        calls stay bounded; a dropped connection goes to the client, which
        reconnects and retries once."""
        conn = None if self._cluster else client.connection  # this thread's own
        if conn is None:  # a cluster client, or one close() just released
            return client.execute_command(*args)
        e = self._r.exceptions
        try:
            conn.send_command(*args)
            return conn.read_response()
        except e.ResponseError:  # a whole error reply: the connection is in step
            raise
        except e.ConnectionError:
            conn.disconnect()
            return client.execute_command(*args)
        except BaseException:  # a timeout or an interrupt mid-reply: out of step
            conn.disconnect()
            raise

    def _run(self, client, name: str, keys: list[str], args: list[Any]):
        """Run one of our scripts: by SHA (cheap), loading it where the server lacks it."""
        sha = self._shas.get(name)
        if sha is not None:
            try:
                return self._command(client, "EVALSHA", sha, len(keys), *keys, *args)
            except self._r.exceptions.NoScriptError:
                pass
        self._shas[name] = client.script_load(_SCRIPTS[name])
        return client.eval(_SCRIPTS[name], len(keys), *keys, *args)

    # ------------------------------------------------------------------ core
    def _chunks(self, parts: Parts) -> list[memoryview]:
        out = []
        for p in parts:
            v = p if isinstance(p, memoryview) else memoryview(p)
            for i in range(0, v.nbytes, self._chunk):
                out.append(v[i : i + self._chunk])
        return out

    def put(self, key: str, value: Parts, owner: str = "") -> None:
        validate_key(key)
        _check_owner(owner)
        client = self._client(key)
        T = self._tag(key)
        with self._err:
            if encoded_size(value) <= self._chunk:
                self._run(client, "write-small", [key, T + "\x00w"], [join_parts(value), owner, T])
                return
            chunks = self._chunks(value)
            ver = secrets.token_hex(8)
            manifest = _MANIFEST + f"{ver}:{len(chunks)}:{encoded_size(value)}".encode()
            # One transaction: the chunks and the script that publishes them and drops
            # the old version's. A client that dies before EXEC leaves nothing.
            pipe = client.pipeline(transaction=True)
            for i, c in enumerate(chunks):
                pipe.set(f"{T}\x00c\x00{ver}\x00{i}\x00{key}", c)
            pipe.execute_command(  # (cluster pipelines have no .eval)
                "EVAL",
                _LUA_WRITE,
                2,
                key,
                T + "\x00w",
                manifest,
                owner,
                T,
                ver,
                len(chunks),
            )
            pipe.execute()

    def _parse_manifest(self, key: str, head: bytes) -> tuple[str, int, int]:
        m = _MANIFEST_BODY.fullmatch(head, len(_MANIFEST))
        if m is None:
            raise CorruptValueError(key, "damaged chunk manifest")
        ver, n, total = m.group(1).decode(), int(m.group(2)), int(m.group(3))
        # every chunk holds 1 .. _MAX_CHUNK bytes
        if not 1 <= n <= total or total > n * _MAX_CHUNK:
            raise CorruptValueError(
                key, f"chunk manifest claims {n} chunks for {total} bytes (impossible)"
            )
        return ver, n, total

    def _judge(self, key: str, found: int, total: int) -> None:
        """Raise for what the check script found, unless the value is whole or replaced."""
        if found == -2:
            raise CorruptValueError(key, "chunk manifest names chunks that do not exist")
        if found >= 0 and found != total:
            raise CorruptValueError(
                key, f"chunk manifest says {total} bytes, its chunks hold {found}"
            )

    def _assemble(self, client, key: str, head: bytes) -> Buffer | None:
        T = self._tag(key)
        for _ in range(50):
            ver, n, total = self._parse_manifest(key, head)
            if n > _PRECHECK_CHUNKS:
                # What is physically there, checked on the server before we queue a GET
                # per claimed chunk: a forged count stops at its first missing chunk.
                found = self._run(client, "check", [key], [head, T, ver, n])
                self._judge(key, found, total)
                if found == -1:
                    head = client.get(key)
                    if head is None or not head.startswith(_MANIFEST):
                        return head
                    continue
            # One transaction: the check, every chunk and the key's current value, so the
            # chunks read are those of a manifest still in place (never half of two versions).
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("EVAL", _LUA_CHECK, 1, key, head, T, ver, n)
            for i in range(n):
                pipe.get(f"{T}\x00c\x00{ver}\x00{i}\x00{key}")
            pipe.get(key)
            found, *chunks, now = pipe.execute()
            self._judge(key, found, total)
            if found == total:
                buf = bytearray(total)
                pos = 0
                for c in chunks:
                    buf[pos : pos + len(c)] = c
                    pos += len(c)
                return buf
            head = now  # replaced since we read the manifest: read what is there now
            if head is None or not head.startswith(_MANIFEST):
                return head
        raise CorruptValueError(
            key, "the value keeps being replaced while it is read (overwritten too often?)"
        )

    def get(self, key: str) -> Buffer | None:
        validate_key(key)
        client = self._client(key)
        with self._err:
            head = self._command(client, "GET", key)
            if head is not None and head.startswith(_MANIFEST):
                return self._assemble(client, key, head)
            return head

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._err:
            return bool(self._client(key).exists(key))

    def delete(self, key: str) -> None:
        validate_key(key)
        T = self._tag(key)
        with self._err:
            self._run(self._client(key), "delete", [key, T + "\x00w"], [T])

    def put_many(self, items: Mapping[str, Parts], owner: str = "") -> None:
        _check_owner(owner)
        small: dict[int, list[tuple[str, bytes]]] = {}
        for k, v in items.items():
            validate_key(k)
            if encoded_size(v) > self._chunk:
                self.put(k, v, owner)
            else:
                small.setdefault(id(self._client(k)), []).append((k, join_parts(v)))
        with self._err:
            for batch in small.values():
                client = self._client(batch[0][0])
                pipe = client.pipeline(transaction=False)
                for k, v in batch:
                    T = self._tag(k)
                    pipe.execute_command("EVAL", _LUA_WRITE_SMALL, 2, k, T + "\x00w", v, owner, T)
                pipe.execute()

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        groups: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            validate_key(k)
            groups.setdefault(id(self._client(k)), []).append(i)
        out: list[Buffer | None] = [None] * len(keys)
        with self._err:
            for idxs in groups.values():
                client = self._client(keys[idxs[0]])
                pipe = client.pipeline(transaction=False)
                for i in idxs:
                    pipe.get(keys[i])
                for i, head in zip(idxs, pipe.execute(), strict=True):
                    if head is not None and head.startswith(_MANIFEST):
                        head = self._assemble(client, keys[i], head)
                    out[i] = head
        return out

    def _scan(self, match: str | None = None) -> Iterator[bytes]:
        for c in self._clients(self._level()):
            yield from c.scan_iter(match=match, count=1000)

    def keys(self, prefix: str = "") -> list[str]:
        out = set()
        with self._err:
            for k in self._scan(_glob_escape(prefix) + "*"):
                k = k.decode("utf-8", "replace") if isinstance(k, bytes) else k
                if "\x00" not in k:
                    out.add(k)
        return sorted(out)

    def clear(self, owner: str | None = None) -> None:
        with self._err:
            if owner is None:
                self._clear_all()
                return
            queues = _glob_escape(_QUEUE) + "*" + _glob_escape(f"->{owner}")
            index_suffix = f"\x00o\x00{owner}".encode()
            for c in self._clients(self._level()):
                for q in list(c.scan_iter(match=queues, count=1000)):  # addressed to owner
                    c.delete(q)
                # the owner's index: one per server (one per slot tag on a cluster)
                for index in list(c.scan_iter(match="*" + _glob_escape(f"\x00o\x00{owner}"))):
                    if not index.endswith(index_suffix):
                        continue
                    T = index[: -len(index_suffix)].decode("utf-8", "surrogateescape")
                    batch: list[bytes] = []
                    for k in c.sscan_iter(index, count=500):
                        batch.append(k)
                        if len(batch) >= 500:
                            self._run(c, "clear", [T + "\x00w", index], [T, owner, *batch])
                            batch = []
                    self._run(c, "clear", [T + "\x00w", index], [T, owner, *batch])

    def _clear_all(self) -> None:
        # Only keys holding simai values (and our internal keys) go: a Redis
        # shared with other applications keeps their data.
        for c in self._clients(self._level()):
            batch = []
            for k in c.scan_iter(count=1000):
                batch.append(k)
                if len(batch) >= 500:
                    self._clear_batch(c, batch)
                    batch = []
            if batch:
                self._clear_batch(c, batch)

    def _clear_batch(self, client, keys: list[bytes]) -> None:
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.getrange(k, 0, len(_MANIFEST) - 1)
        heads = pipe.execute(raise_on_error=False)
        pipe = client.pipeline(transaction=False)
        for k, h in zip(keys, heads, strict=True):
            internal = b"\x00" in k
            ours = isinstance(h, bytes) and (h.startswith(b"SIMA") or h.startswith(_MANIFEST))
            if internal or ours:
                pipe.delete(k)
        pipe.execute()

    # ------------------------------------------------------------------ messaging
    def push(self, queue: str, value: Parts) -> None:
        validate_key(queue)
        with self._err:
            self._client(queue).rpush(_QUEUE + queue, join_parts(value))

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        validate_key(queue)
        deadline = time.monotonic() + timeout
        with self._err:
            while True:
                left = deadline - time.monotonic()
                client = self._client(queue)
                if left <= 0.001:
                    return client.lpop(_QUEUE + queue)
                # stay well inside the socket timeout so a long wait is not a socket error
                level = self._level()
                got = client.blpop([_QUEUE + queue], timeout=min(left, level / 2))
                if got is not None:
                    return got[1]

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None) -> Iterator[None]:
        validate_key(name)
        # a silent server fails the acquire (and the release) after about ``timeout``
        with self.bounded(timeout) if timeout is not None else contextlib.nullcontext():
            lk = self._client(name).lock(_LOCK + name, blocking_timeout=timeout, sleep=0.005)
            with self._err:
                acquired = lk.acquire()
        if not acquired:
            raise TimeoutError(f"could not acquire lock {name!r} within {timeout} s")
        try:
            yield
        finally:
            with self._err:
                lk.release()

    # ------------------------------------------------------------------ config
    def ping(self) -> None:
        with self._err:
            for c in self._clients(self._level()):
                c.ping()

    def close(self) -> None:
        for c in list(self._all):
            with contextlib.suppress(Exception):
                c.close()
        self._all = weakref.WeakSet()
        self._local = threading.local()

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RedisTransport:
        return cls(RedisConfig.model_validate(config))

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else f"{len(self._addrs)} server(s)"
        return f"RedisTransport({self._where()}, {kind})"


# ====================================================================== server
def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _no_retry():
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


_WILDCARDS = ("0.0.0.0", "::", "*")
_CONF_END = b"# simai: end of config"
# Runs on the node, through the launcher: takes the config from stdin up to _CONF_END,
# hands it to redis-server on its stdin (printf is a builtin: the password is in no
# argv), then holds redis-server until its own stdin ends -- when the Python process
# that started it stops it or dies, even by SIGKILL, whatever the launcher forwards.
_NODE_WATCH = (
    'conf=""; while IFS= read -r line && [ "$line" != "# simai: end of config" ]; '
    'do conf="$conf$line\n"; done; '
    'printf "%s" "$conf" | "$0" - & server=$!; '
    # a background job's stdin is /dev/null unless it is taken from another descriptor
    "exec 3<&0; cat <&3 >/dev/null & watch=$!; "
    'trap "kill $server $watch 2>/dev/null" HUP INT TERM; '
    "wait $watch; kill $server 2>/dev/null; wait $server"
)


def _close_stdin(popen: subprocess.Popen) -> None:
    if popen.stdin is not None:
        with contextlib.suppress(OSError):
            popen.stdin.close()


class _Proc:
    def __init__(self, port: int, workdir: str, bus_port: int = 0, host: str = "127.0.0.1"):
        self.host = host
        self.port = port
        self.bus_port = bus_port
        self.dir = os.path.join(workdir, f"{host}-{port}")
        self.popen: subprocess.Popen | None = None

    @property
    def ip(self) -> str:
        # CLUSTER MEET and cluster-announce-ip take addresses, not names
        return self.reach if ":" in self.reach else socket.gethostbyname(self.reach)

    @property
    def reach(self) -> str:
        """Where this process reaches the server (a wildcard bind answers on loopback)."""
        return "127.0.0.1" if self.host in _WILDCARDS else self.host

    @property
    def address(self) -> str:
        """The server's ``host:port`` for clients on any node."""
        host = socket.gethostname() if self.host in _WILDCARDS else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


class RedisServer:
    """Starts redis-server processes (or a cluster) and stops them all: ``nservers`` on
    ``bind``, or one at each ``server_address`` bound to that host, started directly
    when the host is this machine's and through ``launch_prefix`` otherwise."""

    def __init__(self, config: RedisConfig, transport_cls: type = RedisTransport):
        self.config = config
        self._procs: list[_Proc] = []
        self._workdir: str | None = None
        self._password: str | None = None
        self._lock = threading.Lock()

    # -------------------------------------------------------------- start
    def start(self) -> RedisConfig:
        redis = _import_redis()
        cfg = self.config
        if cfg.attach:  # servers someone else runs
            t = RedisTransport(cfg)
            try:
                t.ping()
            finally:
                t.close()
            return cfg
        if cfg.tls and cfg.tls_cert is None:
            raise ValueError("tls: servers we start need tls_cert and tls_key (their certificate)")
        targets = cfg.addresses() or [(cfg.bind, 0)] * cfg.nservers
        if cfg.launch_prefix is None:
            remote = sorted({h for h, _ in targets if not _is_local(h)})
            if remote:
                raise ValueError(
                    f"server_address: {', '.join(remote)} is not this machine; set "
                    "launch_prefix (e.g. ['ssh', '{host}'] or ['mpiexec', '-n', '1', '-hosts', "
                    "'{host}']) to start servers there, or attach=True to use servers running there"
                )
        # through a launcher the executable is found on the node it runs on
        exe = cfg.redis_server_exe if cfg.launch_prefix else shutil.which(cfg.redis_server_exe)
        if exe is None:
            raise FileNotFoundError(
                f"redis-server executable {cfg.redis_server_exe!r} not found; install Redis "
                "(e.g. apt-get install redis-server) or set redis_server_exe"
            )
        self._exe = exe
        self._password = cfg.password or secrets.token_urlsafe(32)
        self._workdir = tempfile.mkdtemp(prefix="simai-redis-")
        try:
            for host, port in targets:
                # a free bus port can be picked only here; elsewhere redis uses port + 10000
                local = cfg.launch_prefix is None
                p = _Proc(
                    port or _free_port(host),
                    self._workdir,
                    _free_port(host) if cfg.is_clustered and local else 0,
                    host,
                )
                self._procs.append(p)
                self._launch(p)
            for p in self._procs:
                self._wait_ready(p, redis)
            if cfg.is_clustered:
                self._form_cluster(redis)
        except BaseException:
            self.stop()
            raise
        addr = ",".join(p.address for p in self._procs)
        # what it returns describes running servers: whoever is handed it attaches
        return cfg.model_copy(
            update={"server_address": addr, "password": self._password, "attach": True}
        )

    def _conf(self, p: _Proc) -> str:
        cfg = self.config
        lines = [
            f"bind {p.host}",
            "port 0" if cfg.tls else f"port {p.port}",
            "protected-mode yes",
            f"requirepass {self._password}",
            'save ""',
            "appendonly no",
        ]
        if cfg.launch_prefix is None:
            lines += [f"dir {p.dir}", "logfile redis.log"]
        else:  # p.dir is on this node only; its log comes back on stdout
            lines += ['logfile ""']
        if cfg.username:
            lines.append(f"user {cfg.username} on >{self._password} ~* &* +@all")
        if cfg.tls:
            lines += [
                f"tls-port {p.port}",
                f"tls-cert-file {cfg.tls_cert}",
                f"tls-key-file {cfg.tls_key}",
            ]
            if cfg.tls_ca_cert:
                # the password authenticates clients; a certificate is checked when one is shown
                lines += [f"tls-ca-cert-file {cfg.tls_ca_cert}", "tls-auth-clients optional"]
            else:
                lines.append("tls-auth-clients no")
            if cfg.is_clustered:
                lines.append("tls-cluster yes")
        lines += [
            "daemonize no",
            "maxmemory-policy noeviction",
            "proto-max-bulk-len 2gb",
        ]
        if cfg.maxmemory:
            lines.append(f"maxmemory {cfg.maxmemory}")
        if cfg.is_clustered:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                # an explicit bus port: the default (port + 10000) may be taken or > 65535
                *([f"cluster-port {p.bus_port}"] if p.bus_port else []),
                # peers learn each other from the announced address, not a connection's
                # source (which, from 127.0.0.11 to 127.0.0.12, is 127.0.0.1)
                *([] if p.host in _WILDCARDS else [f"cluster-announce-ip {p.ip}"]),
                "cluster-node-timeout 5000",
                f"masterauth {self._password}",
            ]
        return "\n".join(lines) + "\n"

    def _launch(self, p: _Proc) -> None:
        os.makedirs(p.dir, mode=0o700, exist_ok=True)
        prefix = self.config.launch_prefix
        if prefix is not None:
            # the config (and its password) goes on stdin: it reaches the node through
            # the launcher without a shared file or the command line
            with open(os.path.join(p.dir, "redis.log"), "wb") as log:
                p.popen = _spawner.popen(
                    [a.replace("{host}", p.host) for a in prefix]
                    + ["sh", "-c", _NODE_WATCH, self._exe],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=p.dir,
                )
            with contextlib.suppress(BrokenPipeError):  # a launcher that failed: see its log
                p.popen.stdin.write(self._conf(p).encode() + _CONF_END + b"\n")
                p.popen.stdin.flush()
            # stdin stays open: it closes when we stop the server or die, however we die
            return
        conf = os.path.join(p.dir, "redis.conf")
        # The password lives in a 0600 file, never on the command line (visible in ps).
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._conf(p))
        p.popen = _spawner.popen(
            [self._exe, conf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=p.dir,
        )

    def _log_tail(self, p: _Proc) -> str:
        try:
            with open(os.path.join(p.dir, "redis.log"), errors="replace") as f:
                return "".join(f.readlines()[-5:]).strip()
        except OSError:
            return "(no log)"

    def _wait_ready(self, p: _Proc, redis) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        for _attempt in range(5):
            while time.monotonic() < deadline:
                if p.popen.poll() is not None:
                    break
                try:
                    c = redis.Redis(
                        host=p.reach,
                        port=p.port,
                        password=self._password,
                        **self.config.client_options(),
                        socket_timeout=2,
                        socket_connect_timeout=1,
                        retry=_no_retry(),  # this loop retries, and sees the server exit
                    )
                    c.ping()
                    c.close()
                    return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                time.sleep(0.01)
            else:
                raise TimeoutError(
                    f"redis-server on port {p.port} did not answer within {self.config.startup_timeout} s: {self._log_tail(p)}"
                )
            log = self._log_tail(p)
            if "Address already in use" in log or "bind" in log.lower():
                if self.config.server_address is not None:  # the user chose this port
                    raise RuntimeError(f"redis-server cannot listen on {p.address}: {log}")
                p.port = _free_port(p.host)  # another process took the port: retry
                if p.bus_port:
                    p.bus_port = _free_port(p.host)
                p.dir = os.path.join(self._workdir, f"{p.host}-{p.port}")
                self._launch(p)
                continue
            raise RuntimeError(f"redis-server exited with code {p.popen.returncode}: {log}")
        raise RuntimeError(f"redis-server could not find a free port: {self._log_tail(p)}")

    def _form_cluster(self, redis) -> None:
        opts = self.config.client_options()
        clients = [
            redis.Redis(
                host=p.reach, port=p.port, password=self._password, socket_timeout=5, **opts
            )
            for p in self._procs
        ]
        try:
            n = len(clients)
            for i, c in enumerate(clients):
                lo, hi = i * 16384 // n, (i + 1) * 16384 // n - 1
                c.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
            for p in self._procs[1:]:
                bus = [p.bus_port] if p.bus_port else []  # none: port + 10000
                clients[0].execute_command("CLUSTER MEET", p.ip, p.port, *bus)
            deadline = time.monotonic() + self.config.startup_timeout
            while time.monotonic() < deadline:
                infos = [c.cluster("INFO") for c in clients]
                if all(
                    i.get("cluster_state") == "ok" and int(i.get("cluster_known_nodes", 0)) == n
                    for i in infos
                ):
                    return
                time.sleep(0.05)
            raise TimeoutError(f"redis cluster did not reach state ok: {infos}")
        finally:
            for c in clients:
                c.close()

    # -------------------------------------------------------------- lifecycle
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self._procs if p.popen is not None]

    def alive(self) -> bool:
        return bool(self._procs) and all(
            p.popen is not None and p.popen.poll() is None for p in self._procs
        )

    def kill(self) -> None:
        """SIGKILL every server (failure testing); ``restart`` brings them back."""
        for p in self._procs:
            if p.popen is not None and p.popen.poll() is None:
                _close_stdin(p.popen)
                p.popen.kill()
                p.popen.wait(5)

    def restart(self) -> None:
        """Start again every server that died, on the same port and password (data is lost)."""
        redis = _import_redis()
        for p in self._procs:
            if p.popen is None or p.popen.poll() is not None:
                self._launch(p)
                self._wait_ready(p, redis)

    def stop(self) -> None:
        with self._lock:
            for p in self._procs:
                if p.popen is not None and p.popen.poll() is None:
                    _close_stdin(p.popen)  # a server started through a launcher ends on EOF
                    p.popen.terminate()
            for p in self._procs:
                if p.popen is None:
                    continue
                try:
                    p.popen.wait(5)
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait(5)
            self._procs.clear()
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None


RedisTransport.Server = RedisServer
