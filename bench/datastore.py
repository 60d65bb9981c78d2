"""Staging benchmark: every simai.datastore backend against its raw reference, same run.

    python bench/datastore.py [--quick] [--json out.json]

float32 arrays of 1 KiB, 1 MiB, 16 MiB and 64 MiB; each case is one write followed
by one read of the same key (the value read is a usable numpy array). References:

* node-local    vs 2 x np.copyto (write copy + read copy: the memory-bandwidth floor),
                   and multiprocessing.shared_memory with a reused segment
* filesystem    vs raw file write + read of the same bytes (on /tmp and on /dev/shm);
                   the targets are judged against this. At 1 KiB also vs the same raw
                   write made atomic (temporary file + rename), for information: what
                   atomic publishing itself costs on that file system
* redis         vs redis-py SET/GET of tobytes() with hiredis, on the same server
* ProxyStore    file and Redis connectors (Store.put/get), for comparison
* many-to-one   4 writer processes, 1 reader: simai vs the raw method
* telemetry     cost of the datastore.* spans with no OpenTelemetry SDK configured
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import shared_memory

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, median_time, note, parser, report

from simai.datastore import DataStore, ServerManager, server_registry

KiB, MiB = 1024, 1024 * 1024
SUITE = "datastore"


def _label(n: int) -> str:
    return f"{n // MiB}MiB" if n >= MiB else f"{n // KiB}KiB"


def _rounds(nbytes: int, quick: bool) -> int:
    if nbytes <= 4 * KiB:  # microseconds each: many rounds to see through the noise
        return 300 if quick else 1500
    if quick:
        return 3 if nbytes >= 16 * MiB else 9
    return 6 if nbytes >= 16 * MiB else 30


def _ours(ds: DataStore, a: np.ndarray):
    def op():
        ds.stage_write("bench", a)
        b = ds.stage_read("bench", timeout=5)
        assert b.nbytes == a.nbytes

    return op


def _ours_into(ds: DataStore, a: np.ndarray):
    out = np.empty_like(a)

    def op():
        ds.stage_write("bench", a)
        ds.stage_read("bench", timeout=5, out=out)

    return op


def _raw_file(path: str, a: np.ndarray):
    view = memoryview(a).cast("B")

    def op():
        with open(path, "wb") as f:
            f.write(view)
        with open(path, "rb") as f:
            b = np.frombuffer(f.read(), dtype=a.dtype)
        assert b.nbytes == a.nbytes

    return op


def _raw_file_atomic(path: str, a: np.ndarray):
    """The raw reference made atomic: write a temporary file, rename it over ``path``."""
    view = memoryview(a).cast("B")
    tmp = path + ".tmp"

    def op():
        with open(tmp, "wb") as f:
            f.write(view)
        os.replace(tmp, path)
        with open(path, "rb") as f:
            b = np.frombuffer(f.read(), dtype=a.dtype)
        assert b.nbytes == a.nbytes

    return op


def _copyto(a: np.ndarray):
    stage, out = np.empty_like(a), np.empty_like(a)

    def op():
        np.copyto(stage, a)
        np.copyto(out, stage)

    return op


def _shm(a: np.ndarray, segments: list):
    seg = shared_memory.SharedMemory(create=True, size=max(a.nbytes, 1))
    segments.append(seg)
    view = np.ndarray(a.shape, a.dtype, buffer=seg.buf)

    def op():
        np.copyto(view, a)
        b = view.copy()
        assert b.nbytes == a.nbytes

    return op


def _raw_redis(client, a: np.ndarray):
    def op():
        client.set("raw-bench", a.tobytes())
        b = np.frombuffer(client.get("raw-bench"), dtype=a.dtype)
        assert b.nbytes == a.nbytes

    return op


def _proxystore_stores(shm_root: str, host: str, port: int, password: str) -> dict:
    import redis
    from proxystore.connectors.file import FileConnector
    from proxystore.connectors.redis import RedisConnector
    from proxystore.store import Store

    rc = RedisConnector(host, port)
    # RedisConnector (proxystore 1.1) takes no password and our redis-server requires one:
    # its client is replaced by one that authenticates. Private, so it is done here only.
    rc._redis_client = redis.Redis(host=host, port=port, password=password)
    return {
        "ProxyStore file (/dev/shm)": Store(
            "ps-file", FileConnector(os.path.join(shm_root, "ps")), register=False
        ),
        "ProxyStore redis": Store("ps-redis", rc, register=False),
    }


def _proxystore(store, a: np.ndarray):
    def op():
        key = store.put(a)
        b = store.get(key)
        store.evict(key)
        assert b.nbytes == a.nbytes

    return op


def _compare(
    results, case, ours_fn, ref_fn, ref_name, rounds, target=None, nbytes=None, method=None
):
    # interleave ours/reference rounds so load on the shared machine hits both alike
    ours_t, ref_t = [], []
    for _ in range(3 if rounds >= 5 else 1):
        # warmup 2: node-local reaches its steady state (a recycled file) on the 3rd write
        ours_t.append(
            median_time(ours_fn, rounds=max(rounds // 3, 1) if rounds >= 5 else rounds, warmup=2)
        )
        ref_t.append(
            median_time(ref_fn, rounds=max(rounds // 3, 1) if rounds >= 5 else rounds, warmup=2)
        )
    ours, ref = min(ours_t), min(ref_t)
    r = Result(SUITE, case, ours, ref, ref_name)
    if nbytes is not None:
        r.extra.update(bytes=nbytes, method=method or case.rsplit(" ", 1)[0])
    if target is not None:
        r.target = f"<= {target:.1f}x"
        r.met = r.ratio <= target
    results.append(r)
    return r


def _overhead_row(results, case, ours, ref, ref_name, limit_s=20e-6):
    r = Result(
        SUITE,
        case,
        ours,
        ref,
        ref_name,
        target=f"<= +{limit_s * 1e6:.0f} µs",
        met=(ours - ref) <= limit_s,
        extra={"overhead_s": ours - ref},
    )
    results.append(r)


# ------------------------------------------------------------------ many-to-one
def _m2o_writer(info, w, n, nbytes, start, raw):
    a = np.full(nbytes // 4, w, dtype=np.float32)
    start.wait()
    if raw == "redis":
        import redis

        host, port = info["config"]["server_address"].rsplit(":", 1)
        c = redis.Redis(host=host, port=int(port), password=info["config"]["password"])
        for i in range(n):
            c.set(f"m2o-raw/{w}/{i}", a.tobytes())
    elif raw == "file":
        d = info["config"]["server_address"]
        for i in range(n):
            tmp = os.path.join(d, f".raw-{w}-{i}")
            with open(tmp, "wb") as f:
                f.write(memoryview(a).cast("B"))
            os.replace(tmp, os.path.join(d, f"raw-{w}-{i}"))
    else:
        ds = DataStore(f"w{w}", server_info=info)
        for i in range(n):
            ds.stage_write(f"m2o/{w}/{i}", a)


def _many_to_one(info, nbytes, n, raw, writers=4):
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_m2o_writer, args=(info, w, n, nbytes, start, raw))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(0.3)  # writers are up and waiting: process start-up is not measured
    t0 = time.perf_counter()
    start.set()
    if raw == "redis":
        import redis

        host, port = info["config"]["server_address"].rsplit(":", 1)
        c = redis.Redis(host=host, port=int(port), password=info["config"]["password"])
        for w in range(writers):
            for i in range(n):
                while (v := c.get(f"m2o-raw/{w}/{i}")) is None:
                    time.sleep(5e-5)
                assert np.frombuffer(v, dtype=np.float32)[0] == w
        elapsed = time.perf_counter() - t0
        c.delete(*[f"m2o-raw/{w}/{i}" for w in range(writers) for i in range(n)])
        return _join(procs, elapsed)
    elif raw == "file":
        d = info["config"]["server_address"]
        for w in range(writers):
            for i in range(n):
                path = os.path.join(d, f"raw-{w}-{i}")
                while not os.path.exists(path):
                    time.sleep(5e-5)
                with open(path, "rb") as f:
                    assert np.frombuffer(f.read(), dtype=np.float32)[0] == w
        elapsed = time.perf_counter() - t0
        for w in range(writers):
            for i in range(n):
                os.unlink(os.path.join(d, f"raw-{w}-{i}"))
        return _join(procs, elapsed)
    else:
        ds = DataStore("reader", server_info=info)
        for w in range(writers):
            for i in range(n):
                assert ds.stage_read(f"m2o/{w}/{i}", timeout=60)[0] == w
        elapsed = time.perf_counter() - t0
        for w in range(writers):  # each writer's keys belong to its store name
            DataStore(f"w{w}", server_info=info).clean()
        return _join(procs, elapsed)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    return elapsed


def _join(procs, elapsed):
    for p in procs:
        p.join(60)
    return elapsed


# ------------------------------------------------------------------ main
def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1KiB,1MiB,16MiB,64MiB")
    p.add_argument("--no-proxystore", action="store_true")
    p.add_argument(
        "--only",
        choices=["redis"],
        help="only this backend's write+read cases against their reference",
    )
    p.add_argument("--plot", metavar="PNG", help="also plot MB/s vs size, one line per method")
    args = p.parse_args()
    sizes = [int(s[:-3]) * (MiB if s.endswith("MiB") else KiB) for s in args.sizes.split(",")]
    results: list[Result] = []
    segments: list[shared_memory.SharedMemory] = []
    tmp_root = tempfile.mkdtemp(prefix="simai-bench-")
    shm_root = tempfile.mkdtemp(prefix="simai-bench-", dir="/dev/shm")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp_root, True)
        stack.callback(shutil.rmtree, shm_root, True)
        stack.callback(lambda: [s.close() or s.unlink() for s in segments])
        nl = stack.enter_context(ServerManager("nl", type="node-local"))
        fs_tmp = stack.enter_context(
            ServerManager("fs", type="filesystem", server_address=os.path.join(tmp_root, "s"))
        )
        fs_shm = stack.enter_context(
            ServerManager("fs-shm", type="filesystem", server_address=os.path.join(shm_root, "s"))
        )
        rs = stack.enter_context(
            ServerManager("redis", config=server_registry.create_config("redis"))
        )
        stores = {
            name: DataStore(name, server_info=sm.get_server_info())
            for name, sm in (
                ("node-local", nl),
                ("fs-tmp", fs_tmp),
                ("fs-shm", fs_shm),
                ("redis", rs),
            )
        }
        import redis

        rinfo = rs.get_server_info()["config"]
        host, port = rinfo["server_address"].rsplit(":", 1)
        raw_redis = redis.Redis(host=host, port=int(port), password=rinfo["password"])
        ps_stores = {}
        try:
            if not args.no_proxystore:
                ps_stores = _proxystore_stores(shm_root, host, int(port), rinfo["password"])
        except ImportError:
            note(
                "the ProxyStore references are skipped: proxystore is not installed (pip install proxystore)"
            )

        for n in sizes:
            a = np.random.default_rng(0).random(n // 4, dtype=np.float32)
            lab = _label(n)
            rounds = _rounds(n, args.quick)
            small = n <= 4 * KiB
            rr = _compare(
                results,
                f"redis {lab}",
                _ours(stores["redis"], a),
                _raw_redis(raw_redis, a),
                "redis-py SET/GET",
                rounds,
                target=None if small else 1.0,
                nbytes=n,
                method="simai redis",
            )
            if small:
                _overhead_row(
                    results, f"redis {lab} overhead", rr.ours, rr.reference, rr.reference_name
                )
            if args.only == "redis":
                continue
            r = _compare(
                results,
                f"node-local {lab}",
                _ours(stores["node-local"], a),
                _copyto(a),
                "2x np.copyto",
                rounds,
                target=3.0 if n >= 64 * MiB else None,
                nbytes=n,
                method="simai node-local",
            )
            _compare(
                results,
                f"node-local {lab}",
                _ours(stores["node-local"], a),
                _shm(a, segments),
                "shared_memory (reused)",
                rounds,
                nbytes=n,
                method="simai node-local",
            )
            _compare(
                results,
                f"node-local {lab}",
                _ours(stores["node-local"], a),
                _raw_file(os.path.join(shm_root, "raw"), a),
                "raw file /dev/shm",
                rounds,
                nbytes=n,
                method="simai node-local",
            )
            if not small:
                _compare(
                    results,
                    f"node-local {lab} read into out=",
                    _ours_into(stores["node-local"], a),
                    _copyto(a),
                    "2x np.copyto",
                    rounds,
                    nbytes=n,
                    method="simai node-local, read into out=",
                )
            rf = _compare(
                results,
                f"filesystem /tmp {lab}",
                _ours(stores["fs-tmp"], a),
                _raw_file(os.path.join(tmp_root, "raw"), a),
                "raw file /tmp",
                rounds,
                target=None if small else 1.2,
                nbytes=n,
                method="simai filesystem /tmp",
            )
            rs_ = _compare(
                results,
                f"filesystem /dev/shm {lab}",
                _ours(stores["fs-shm"], a),
                _raw_file(os.path.join(shm_root, "raw"), a),
                "raw file /dev/shm",
                rounds,
                target=None if small else 1.2,
                nbytes=n,
                method="simai filesystem /dev/shm",
            )
            if small:
                _overhead_row(
                    results,
                    f"node-local {lab} overhead",
                    r.ours,
                    median_time(_raw_file(os.path.join(shm_root, "raw"), a), rounds=rounds),
                    "raw file /dev/shm",
                )
                _overhead_row(
                    results,
                    f"filesystem /tmp {lab} overhead",
                    rf.ours,
                    rf.reference,
                    rf.reference_name,
                )
                _overhead_row(
                    results,
                    f"filesystem /dev/shm {lab} overhead",
                    rs_.ours,
                    rs_.reference,
                    rs_.reference_name,
                )
                for where, root in (("/tmp", tmp_root), ("/dev/shm", shm_root)):
                    _compare(
                        results,
                        f"filesystem {where} {lab} vs atomic raw",
                        _ours(stores["fs-tmp" if where == "/tmp" else "fs-shm"], a),
                        _raw_file_atomic(os.path.join(root, "raw-atomic"), a),
                        f"raw file + rename {where}",
                        rounds,
                        nbytes=n,
                        method=f"simai filesystem {where}",
                    )
            for name, st in ps_stores.items():
                ours_store = stores["node-local"] if "file" in name else stores["redis"]
                _compare(
                    results,
                    f"{'node-local' if 'file' in name else 'redis'} {lab} vs ProxyStore",
                    _ours(ours_store, a),
                    _proxystore(st, a),
                    name,
                    max(rounds // 2, 3),
                    nbytes=n,
                    method="simai node-local" if "file" in name else "simai redis",
                )
            del a
        if args.only:
            report("simai.datastore staging (write+read, median of rounds)", results, args.json)
            return

        # telemetry: the same 1 KiB write+read with and without the span wrapper
        import simai.datastore.store as store_mod

        a = np.zeros(256, dtype=np.float32)
        op = _ours(stores["node-local"], a)
        with_spans = median_time(op, rounds=2001, warmup=50)
        real = store_mod.op_span
        store_mod.op_span = lambda *a, **k: contextlib.nullcontext(_NoSpan)
        try:
            without = median_time(op, rounds=2001, warmup=50)
        finally:
            store_mod.op_span = real
        results.append(
            Result(
                SUITE,
                "span overhead, no SDK (1KiB write+read)",
                with_spans,
                without,
                "same without spans",
                extra={"overhead_s": with_spans - without},
            )
        )

        # many-to-one: 4 and 16 writer processes, 1 reader, the same 160 values in all
        for writers in (4, 16):
            m2o_n = (40 if args.quick else 160) // writers
            for label, sm, raw in (("redis", rs, "redis"), ("node-local", nl, "file")):
                info = sm.get_server_info()
                t_ours = _many_to_one(info, MiB, m2o_n, None, writers)
                t_raw = _many_to_one(info, MiB, m2o_n, raw, writers)
                results.append(
                    Result(
                        SUITE,
                        f"many-to-one {writers} writers->1 reader, {m2o_n}x1MiB each, {label}",
                        t_ours,
                        t_raw,
                        "redis-py SET/GET" if raw == "redis" else "raw files + rename",
                    )
                )
    report("simai.datastore staging (write+read, median of rounds)", results, args.json)
    if args.plot:
        _plot(results, args.plot)


def _plot(results: list[Result], path: str) -> None:
    """MB/s (write+read of the array, i.e. 2 x its size per op) vs size, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best: dict[str, dict[int, float]] = {}
    for r in results:
        n = r.extra.get("bytes")
        if not n:
            continue
        for method, t in ((r.extra["method"], r.ours), (r.reference_name, r.reference)):
            pts = best.setdefault(method, {})
            pts[n] = min(pts.get(n, float("inf")), t)
    fig, ax = plt.subplots(figsize=(8, 5))
    for method, pts in sorted(best.items()):
        sizes = sorted(pts)
        style = "-o" if method.startswith("simai") else "--x"
        ax.plot(sizes, [2 * s / pts[s] / 1e6 for s in sizes], style, label=method)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("array size (bytes)")
    ax.set_ylabel("MB/s (write + read)")
    ax.set_title("simai.datastore staging vs raw references (same run)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


class _NoSpanType:
    def is_recording(self):
        return False


_NoSpan = _NoSpanType()

if __name__ == "__main__":
    main()
