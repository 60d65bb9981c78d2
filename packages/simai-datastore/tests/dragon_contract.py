"""The datastore contract checks, run inside the Dragon runtime: ``dragon dragon_contract.py``.

Prints one line ``RESULT <json>`` mapping each check to "ok" or its error.
test_dragon.py runs this script; it is not collected by pytest itself.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import socket
import traceback
from pathlib import Path

import numpy as np


class _Planted:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/simai-dragon-pwned"),))


def _writer(info, w):
    from simai.datastore import DataStore

    ds = DataStore(f"w{w}", server_info=info)
    for i in range(10):
        ds.stage_write(f"w{w}-{i}", np.full(1000 + i, w * 100 + i, dtype=np.int32))


def _reader(ds, key):  # receives a pickled DataStore
    return ds.stage_read(key, timeout=10).tobytes()


def main() -> None:
    import dragon  # noqa: F401  (registers the "dragon" start method)

    mp.set_start_method("dragon")
    from simai.datastore import (
        CorruptValueError,
        DataStore,
        InvalidKeyError,
        PickleNotAllowedError,
        ServerManager,
        StagedDataTimeout,
        UnsupportedOperationError,
        server_registry,
    )
    from simai.datastore.serialize import encode

    results = {}

    def check(name):
        def deco(fn):
            try:
                fn()
                results[name] = "ok"
            except Exception:
                results[name] = traceback.format_exc(limit=3)
            return fn

        return deco

    # sized per node, as on a cluster: total_mem = mem_per_node * the allocation's nodes
    cfg = server_registry.create_config(
        "dragon", mem_per_node=256 * 1024 * 1024, nodes=[socket.gethostname()]
    )
    with ServerManager("dragon-test", config=cfg) as sm:
        info = sm.get_server_info()
        assert (info["config"]["n_nodes"], info["config"]["total_mem"]) == (1, 256 * 1024 * 1024)
        json.dumps(info)
        ds = DataStore("contract", server_info=info)

        @check("arrays_bit_exact")
        def _():
            rng = np.random.default_rng(0)
            for dt in [
                "?",
                "i1",
                "u8",
                "f2",
                "f4",
                "f8",
                "g",
                "c16",
                "S5",
                "U3",
                "M8[ns]",
                [("a", "i4"), ("b", "f8")],
            ]:
                dt = np.dtype(dt)
                for shape in [(), (0,), (5, 7)]:
                    n = int(np.prod(shape)) * dt.itemsize
                    a = rng.integers(0, 256, n, dtype=np.uint8).view(dt).reshape(shape)
                    for arr in (a, np.asfortranarray(a)):
                        ds.stage_write("a", arr)
                        b = ds.stage_read("a")
                        assert (
                            b.dtype == arr.dtype
                            and b.shape == arr.shape
                            and b.tobytes() == arr.tobytes()
                        )
            big = rng.random(2_000_000).astype(np.float32)
            ds.stage_write("big", big)
            assert ds.stage_read("big").tobytes() == big.tobytes()

        @check("basic_types")
        def _():
            v = {"s": "x", "b": b"y", "l": [1, None, 2.5], "t": (1, 2), "big": 2**80}
            ds.stage_write("basic", v)
            assert ds.stage_read("basic") == v

        @check("missing_and_timeout")
        def _():
            assert not ds.poll_staged_data("nope")
            ds.clean_staged_data("nope")
            try:
                ds.stage_read("nope", timeout=0.2)
            except StagedDataTimeout:
                pass
            else:
                raise AssertionError("no timeout")

        @check("planted_pickle_refused")
        def _():
            ds.transport.put("raw", [pickle.dumps(_Planted())])
            try:
                ds.stage_read("raw")
            except CorruptValueError:
                pass
            ds.transport.put("framed", encode(_Planted(), allow_pickle=True))
            try:
                ds.stage_read("framed")
            except PickleNotAllowedError:
                pass
            assert not Path("/tmp/simai-dragon-pwned").exists()

        @check("keys_hostile_and_invalid")
        def _():
            ds.transport.clear()  # every writer's keys (clean() removes only this name's)
            hostile = ["../../x", "/", "ключ🔑", "k" * 1024]
            for i, k in enumerate(hostile):
                ds.stage_write(k, i)
            assert sorted(ds.keys()) == sorted(hostile), ds.keys()
            assert [ds.stage_read(k) for k in hostile] == list(range(len(hostile)))
            for bad in ["", "a\x00b", "k" * 1025]:
                try:
                    ds.stage_write(bad, 1)
                except InvalidKeyError:
                    continue
                raise AssertionError(f"accepted {bad!r}")

        @check("concurrent_writers_processes")
        def _():
            procs = [mp.Process(target=_writer, args=(info, w)) for w in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
                assert p.exitcode == 0, p.exitcode
            for w in range(3):
                for i in range(10):
                    a = ds.stage_read(f"w{w}-{i}")
                    assert a.shape == (1000 + i,) and (a == w * 100 + i).all()

        @check("pickled_store_in_child")
        def _():
            ds.stage_write("pk", np.arange(7))
            with mp.Pool(1) as pool:
                assert pool.apply(_reader, (ds, "pk")) == np.arange(7).tobytes()

        @check("messaging_unsupported_is_clear")
        def _():
            try:
                ds.send("x", ["other"])
            except UnsupportedOperationError:
                return
            raise AssertionError("send did not raise")

        @check("batch_and_clean")
        def _():
            ds.stage_write_many({f"m{i}": i for i in range(5)})
            assert ds.stage_read_many([f"m{i}" for i in range(5)]) == list(range(5))
            ds.clean()  # this name's keys go, the other writers' stay
            left = ds.keys()
            assert not any(k.startswith("m") for k in left) and "w0-0" in left, left

        @check("shared_key_goes_with_the_last_clean")
        def _():
            other = DataStore("other-writer", server_info=info)
            ds.stage_write("shared", 1)
            other.stage_write("shared", 2)
            other.clean()  # other wrote it last, but ds wrote it too: it stays
            assert ds.stage_read("shared", timeout=0) == 2
            ds.clean()
            assert other.keys(prefix="shared") == []

        ds.close()
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
