"""``redis`` backend: one server, several servers (client-side sharding) or a Redis Cluster.

Values up to ``chunk_size`` are one ``SET``. Larger values are written as
pipelined chunks under a fresh version id, then published by swapping a small
manifest into the key (``SET ... GET``), so readers see the old value or the new
one, never a mix; the old version's chunks are deleted afterwards, and a reader
that raced with that deletion simply re-reads the manifest.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import xxhash

from simai.datastore._keys import validate_key
from simai.datastore.config import RedisConfig
from simai.datastore.errors import BackendUnavailableError, CorruptValueError
from simai.datastore.serialize import Buffer, Parts, encoded_size, join_parts

__all__ = ["RedisServer", "RedisTransport"]

_MANIFEST = b"\x00SIMAI-CHUNKED\x00"
_MANIFEST_FMT = struct.Struct("<16sQQ")  # version id, chunk count, total bytes
_SEP = "\x00"  # user keys cannot contain NUL, so internal keys never collide
_QUEUE = "\x00q\x00"
_LOCK = "\x00lock\x00"
_FAILED = object()


def _import_redis():
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "redis is required for the redis datastore backend: pip install 'simai-datastore[redis]'"
        ) from exc
    return redis


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
        kw = dict(
            password=config.password,
            socket_timeout=config.socket_timeout,
            socket_connect_timeout=config.connect_timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        if config.is_clustered:
            from redis.cluster import ClusterNode, RedisCluster

            try:
                self._clients = [
                    RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in addrs], **kw)
                ]
            # RedisClusterException is not a RedisError: it carries the start-up
            # failures (unreachable nodes, a refused password) of a cluster client.
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                raise self._translate(exc) from exc
        else:
            self._clients = [redis.Redis(host=h, port=p, **kw) for h, p in addrs]
        self._cluster = config.is_clustered
        self._err = _Translate(self)
        self._local = threading.local()
        self._fast_all: weakref.WeakSet = weakref.WeakSet()  # every thread's, for close()

    # ------------------------------------------------------------------ helpers
    def _client(self, key: str):
        if len(self._clients) == 1:
            return self._clients[0]
        return self._clients[xxhash.xxh3_64_intdigest(key.encode("utf-8")) % len(self._clients)]

    # Small values skip redis-py's per-command machinery (pool checkout, retry
    # wrapper, event dispatch, metrics): one dedicated connection per thread and
    # process sends the command and reads the reply -- 1 KiB SET+GET 62 -> 37 µs.
    # Any connection-level failure drops that connection and redoes the command
    # through the client, whose retries and error translation then apply.
    def _fast_conn(self, client):
        loc = self._local
        conns = getattr(loc, "conns", None)
        if conns is None or loc.pid != os.getpid():  # a forked child must not share a socket
            conns = loc.conns = {}
            loc.pid = os.getpid()
        conn = conns.get(id(client))
        if conn is None:
            kw = dict(client.connection_pool.connection_kwargs)
            conn = conns[id(client)] = client.connection_pool.connection_class(**kw)
            self._fast_all.add(conn)
        return conn

    def _fast(self, client, *args):
        """One command on this thread's own connection; ``_FAILED`` when it broke."""
        if self._cluster:
            return _FAILED
        conn = self._fast_conn(client)
        e = self._r.exceptions
        try:
            conn.send_command(*args)
            return conn.read_response()
        except e.ResponseError:
            raise
        except (e.ConnectionError, e.TimeoutError, OSError):
            conn.disconnect()
            return _FAILED
        except BaseException:  # e.g. KeyboardInterrupt mid-reply: the stream is out of sync
            conn.disconnect()
            raise

    def _close_fast(self) -> None:
        for conn in list(self._fast_all):
            with contextlib.suppress(Exception):
                conn.disconnect()
        self._fast_all = weakref.WeakSet()
        self._local = threading.local()

    def _where(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self._addrs)

    def _translate(self, exc: Exception) -> Exception:
        e = self._r.exceptions
        if (
            isinstance(exc, e.AuthenticationError)
            or "WRONGPASS" in str(exc)
            or "NOAUTH" in str(exc)
            or "username-password" in str(exc)  # cluster client, wrong password
            or "already authenticated" in str(exc)  # cluster client, no password (HELLO)
        ):
            return BackendUnavailableError(
                f"redis at {self._where()}: authentication failed (wrong or missing password): {exc}"
            )
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

    def _errors(self) -> _Translate:
        return self._err

    # ------------------------------------------------------------------ core
    def _chunks(self, parts: Parts) -> list[memoryview]:
        out = []
        for p in parts:
            v = p if isinstance(p, memoryview) else memoryview(p)
            for i in range(0, v.nbytes, self._chunk):
                out.append(v[i : i + self._chunk])
        return out

    def put(self, key: str, value: Parts) -> None:
        validate_key(key)
        client = self._client(key)
        with self._errors():
            if encoded_size(value) <= self._chunk:
                data = join_parts(value)
                if self._fast(client, "SET", key, data) is _FAILED:
                    client.set(key, data)
                return
            chunks = self._chunks(value)
            ver = secrets.token_hex(8).encode()
            manifest = _MANIFEST + _MANIFEST_FMT.pack(ver, len(chunks), encoded_size(value))
            pipe = client.pipeline(transaction=False)
            for i, c in enumerate(chunks):
                pipe.set(f"{key}{_SEP}{ver.decode()}{_SEP}{i}", c)
            if self._cluster:  # chunks may live on other nodes: they must land first
                pipe.execute()
                old = client.set(key, manifest, get=True)
            else:  # one connection: the pipeline keeps the order
                pipe.set(key, manifest, get=True)
                old = pipe.execute()[-1]
            self._drop_chunks(client, key, old)

    def _parse_manifest(self, key: str, head: bytes) -> tuple[str, int, int]:
        try:
            ver, n, total = _MANIFEST_FMT.unpack_from(head, len(_MANIFEST))
        except struct.error as exc:
            raise CorruptValueError(key, f"damaged chunk manifest: {exc}") from exc
        return ver.decode(), n, total

    def _drop_chunks(self, client, key: str, old: bytes | None) -> None:
        if old and old.startswith(_MANIFEST):
            ver, n, _ = self._parse_manifest(key, old)
            pipe = client.pipeline(transaction=False)
            for i in range(n):
                pipe.delete(f"{key}{_SEP}{ver}{_SEP}{i}")
            pipe.execute()

    def _assemble(self, client, key: str, head: bytes) -> Buffer | None:
        for _ in range(10):
            ver, n, total = self._parse_manifest(key, head)
            pipe = client.pipeline(transaction=False)
            for i in range(n):
                pipe.get(f"{key}{_SEP}{ver}{_SEP}{i}")
            chunks = pipe.execute()
            if all(c is not None for c in chunks):
                buf = bytearray(total)
                pos = 0
                for c in chunks:
                    buf[pos : pos + len(c)] = c
                    pos += len(c)
                return buf if pos == total else memoryview(buf)[:pos]
            head = client.get(key)  # overwritten while we read: start again
            if head is None or not head.startswith(_MANIFEST):
                return head
        raise CorruptValueError(
            key, "chunks of the value keep disappearing (overwritten too often?)"
        )

    def get(self, key: str) -> Buffer | None:
        validate_key(key)
        client = self._client(key)
        with self._errors():
            head = self._fast(client, "GET", key)
            if head is _FAILED:
                head = client.get(key)
            if head is not None and head.startswith(_MANIFEST):
                return self._assemble(client, key, head)
            return head

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._errors():
            return bool(self._client(key).exists(key))

    def delete(self, key: str) -> None:
        validate_key(key)
        client = self._client(key)
        with self._errors():
            old = client.getdel(key)
            self._drop_chunks(client, key, old)

    def put_many(self, items: Mapping[str, Parts]) -> None:
        small: dict[Any, list[tuple[str, bytes]]] = {}
        for k, v in items.items():
            validate_key(k)
            if encoded_size(v) > self._chunk:
                self.put(k, v)
            else:
                small.setdefault(id(self._client(k)), []).append((k, join_parts(v)))
        with self._errors():
            for batch in small.values():
                client = self._client(batch[0][0])
                pipe = client.pipeline(transaction=False)
                for k, v in batch:
                    pipe.set(k, v)
                pipe.execute()

    def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        groups: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            validate_key(k)
            groups.setdefault(id(self._client(k)), []).append(i)
        out: list[Buffer | None] = [None] * len(keys)
        with self._errors():
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

    def keys(self, prefix: str = "") -> list[str]:
        out = set()
        with self._errors():
            for c in self._clients:
                for k in c.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
                    k = k.decode("utf-8", "replace") if isinstance(k, bytes) else k
                    if _SEP not in k:
                        out.add(k)
        return sorted(out)

    def clear(self) -> None:
        # Only keys holding simai values (and our internal keys) go: a Redis
        # shared with other applications keeps their data.
        with self._errors():
            for c in self._clients:
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
        with self._errors():
            self._client(queue).rpush(_QUEUE + queue, join_parts(value))

    def pop(self, queue: str, timeout: float) -> Buffer | None:
        validate_key(queue)
        client = self._client(queue)
        deadline = time.monotonic() + timeout
        with self._errors():
            while True:
                left = deadline - time.monotonic()
                if left <= 0.001:
                    return client.lpop(_QUEUE + queue)
                # stay well inside socket_timeout so a long wait is not a socket error
                got = client.blpop(
                    [_QUEUE + queue], timeout=min(left, self._cfg.socket_timeout / 2)
                )
                if got is not None:
                    return got[1]

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None) -> Iterator[None]:
        validate_key(name)
        lk = self._client(name).lock(_LOCK + name, blocking_timeout=timeout, sleep=0.005)
        with self._errors():
            acquired = lk.acquire()
        if not acquired:
            raise TimeoutError(f"could not acquire lock {name!r} within {timeout} s")
        try:
            yield
        finally:
            with self._errors():
                lk.release()

    # ------------------------------------------------------------------ config
    def ping(self) -> None:
        with self._errors():
            for c in self._clients:
                c.ping()

    def close(self) -> None:
        self._close_fast()
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()

    def config(self) -> dict[str, Any]:
        return self._cfg.model_dump()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RedisTransport:
        return cls(RedisConfig.model_validate(config))

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else f"{len(self._clients)} server(s)"
        return f"RedisTransport({self._where()}, {kind})"


# ====================================================================== server
def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # If the Python process that started redis is killed, the kernel sends
    # SIGTERM to redis: no orphaned servers.
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Proc:
    def __init__(self, port: int, workdir: str, bus_port: int = 0):
        self.port = port
        self.bus_port = bus_port
        self.dir = os.path.join(workdir, str(port))
        self.popen: subprocess.Popen | None = None


class RedisServer:
    """Starts ``nservers`` redis-server processes (or a cluster) and stops them all."""

    def __init__(self, config: RedisConfig, transport_cls: type[RedisTransport] = RedisTransport):
        self.config = config
        self._procs: list[_Proc] = []
        self._workdir: str | None = None
        self._password: str | None = None
        self._lock = threading.Lock()

    # -------------------------------------------------------------- start
    def start(self) -> RedisConfig:
        redis = _import_redis()
        cfg = self.config
        if cfg.server_address is not None:  # attach to servers someone else runs
            t = RedisTransport(cfg)
            try:
                t.ping()
            finally:
                t.close()
            return cfg
        exe = shutil.which(cfg.redis_server_exe)
        if exe is None:
            raise FileNotFoundError(
                f"redis-server executable {cfg.redis_server_exe!r} not found; install Redis "
                "(e.g. apt-get install redis-server) or set redis_server_exe"
            )
        self._exe = exe
        self._password = cfg.password or secrets.token_urlsafe(32)
        self._workdir = tempfile.mkdtemp(prefix="simai-redis-")
        try:
            for _ in range(cfg.nservers):
                p = _Proc(
                    _free_port(cfg.bind),
                    self._workdir,
                    _free_port(cfg.bind) if cfg.is_clustered else 0,
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
        addr = ",".join(f"{self._host()}:{p.port}" for p in self._procs)
        return cfg.model_copy(update={"server_address": addr, "password": self._password})

    def _host(self) -> str:
        b = self.config.bind
        if b in ("0.0.0.0", "::", "*"):
            return socket.gethostname()
        return f"[{b}]" if ":" in b else b

    def _conf(self, p: _Proc) -> str:
        cfg = self.config
        lines = [
            f"bind {cfg.bind}",
            f"port {p.port}",
            "protected-mode yes",
            f"requirepass {self._password}",
            'save ""',
            "appendonly no",
            f"dir {p.dir}",
            "logfile redis.log",
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
                f"cluster-port {p.bus_port}",
                "cluster-node-timeout 5000",
                f"masterauth {self._password}",
            ]
        return "\n".join(lines) + "\n"

    def _launch(self, p: _Proc) -> None:
        os.makedirs(p.dir, mode=0o700, exist_ok=True)
        conf = os.path.join(p.dir, "redis.conf")
        # The password lives in a 0600 file, never on the command line (visible in ps).
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._conf(p))
        main = threading.current_thread() is threading.main_thread()
        p.popen = subprocess.Popen(
            [self._exe, conf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=p.dir,
            preexec_fn=_die_with_parent if main else None,
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
                        host=self.config.bind
                        if self.config.bind not in ("0.0.0.0", "::")
                        else "127.0.0.1",
                        port=p.port,
                        password=self._password,
                        socket_timeout=2,
                        socket_connect_timeout=1,
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
                p.port = _free_port(self.config.bind)  # another process took the port: retry
                if p.bus_port:
                    p.bus_port = _free_port(self.config.bind)
                p.dir = os.path.join(self._workdir, str(p.port))
                self._launch(p)
                continue
            raise RuntimeError(f"redis-server exited with code {p.popen.returncode}: {log}")
        raise RuntimeError(f"redis-server could not find a free port: {self._log_tail(p)}")

    def _form_cluster(self, redis) -> None:
        host = "127.0.0.1" if self.config.bind in ("0.0.0.0", "::") else self.config.bind
        clients = [
            redis.Redis(host=host, port=p.port, password=self._password, socket_timeout=5)
            for p in self._procs
        ]
        try:
            n = len(clients)
            for i, c in enumerate(clients):
                lo, hi = i * 16384 // n, (i + 1) * 16384 // n - 1
                c.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
            for p in self._procs[1:]:
                clients[0].execute_command("CLUSTER MEET", host, p.port, p.bus_port)
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
