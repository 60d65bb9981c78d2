"""Compute, copy and misc kernels compute what they claim, on cached seeded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from simai.kernels import KernelTiming, clear_cache, get_kernel


def run_and_buffers(name, **kw):
    k = get_kernel(name)
    k(**kw)
    return k.buffers(**kw)


def test_matmul_simple_2d():
    b = run_and_buffers("MatMulSimple2D", data_size=(48, 32), dtype="float64")
    assert b["a"].shape == (48, 32) and b["b"].shape == (32, 48)
    np.testing.assert_allclose(b["c"], b["a"] @ b["b"])
    assert b["c"].any()


def test_matmul_simple_2d_square_from_int():
    assert run_and_buffers("MatMulSimple2D", data_size=20)["c"].shape == (20, 20)
    with pytest.raises(ValueError, match="dimension"):
        get_kernel("MatMulSimple2D")(data_size=(2, 3, 4, 5))


def test_matmul_simple_2d_batched_from_3d_data_size():
    # SimAI-Bench's own configs give MatMulSimple2D a 3-D data_size: a batch of products.
    b = run_and_buffers("MatMulSimple2D", data_size=(3, 6, 4), dtype="float64")
    assert b["a"].shape == (3, 6, 4) and b["b"].shape == (3, 4, 6)
    np.testing.assert_allclose(b["c"], b["a"] @ b["b"])


@pytest.mark.parametrize("shape,axes", [((4, 5, 6), 2), ((4, 5, 6), 1), ((7, 3), 1)])
def test_matmul_general_any_shape(shape, axes):
    b = run_and_buffers("MatMulGeneral", data_size=shape, axes=axes)
    assert np.tensordot(b["a"], b["b"], axes).shape == shape[: len(shape) - axes] * 2
    with pytest.raises(ValueError, match="axes"):
        get_kernel("MatMulGeneral")(data_size=shape, axes=len(shape) + 1)


def test_fft_matches_numpy_and_type_in():
    b = run_and_buffers("FFT", data_size=(8, 16), transform_dim=0, dtype="complex128")
    np.testing.assert_allclose(b["out"], np.fft.fft(b["x"], axis=0))
    b = run_and_buffers("FFT", data_size=(8, 16), type_in="double")
    assert b["x"].dtype == np.float64 and b["out"].dtype == np.complex128
    with pytest.raises(ValueError, match="type_in"):
        get_kernel("FFT")(type_in="half")
    with pytest.raises(ValueError, match="transform_dim"):
        get_kernel("FFT")(data_size=(4, 4), transform_dim=2)


def test_axpy_leaves_inputs_unchanged():
    k = get_kernel("AXPY")
    b = k.buffers(data_size=1000, alpha=2.0)
    x0, y0 = b["x"].copy(), b["y"].copy()
    for _ in range(3):
        k(data_size=1000, alpha=2.0)
    np.testing.assert_allclose(b["z"], 2.0 * x0 + y0, rtol=1e-6)
    np.testing.assert_array_equal(b["x"], x0)
    np.testing.assert_array_equal(b["y"], y0)


@pytest.mark.parametrize("op", ["exp", "sin", "tanh", "square"])
def test_inplace_compute_ops(op):
    b = run_and_buffers("InplaceCompute", data_size=(10, 10), op=op)
    np.testing.assert_allclose(b["y"], getattr(np, op)(b["x"]), rtol=1e-6)


def test_inplace_compute_callable_and_bad_op():
    seen = []
    get_kernel("InplaceCompute")(data_size=5, op=lambda x: seen.append(x.shape))
    assert seen == [(5,)]
    with pytest.raises(ValueError, match="op must be one of"):
        get_kernel("InplaceCompute")(op="sqrtt")


def test_random_numbers_are_new_each_call_and_in_range():
    k = get_kernel("GenerateRandomNumber")
    k(data_size=(64,), dtype="float64")
    first = k.buffers(data_size=(64,), dtype="float64")["x"].copy()
    k(data_size=(64,), dtype="float64")
    second = k.buffers(data_size=(64,), dtype="float64")["x"]
    assert not np.array_equal(first, second)
    assert ((second >= 0) & (second < 1)).all()
    with pytest.raises(ValueError, match="distribution"):
        k(distribution="poisson")
    with pytest.raises(ValueError, match="float32 or float64"):
        k(dtype="float16")


def test_scatter_add_accumulates_repeated_indices():
    k = get_kernel("ScatterAdd")
    b = k.buffers(data_size=(8, 8), nupdates=1000)
    expected = b["y"].copy()
    np.add.at(expected.reshape(-1), b["idx"], b["x"])
    k(data_size=(8, 8), nupdates=1000)
    np.testing.assert_allclose(b["y"], expected, rtol=1e-5)
    assert len(np.unique(b["idx"])) < 1000  # repeats were exercised


def test_copies():
    b = run_and_buffers("CopyHostToDevice", data_size=(5, 7))
    np.testing.assert_array_equal(b["device"], b["host"])
    b = run_and_buffers("CopyDeviceToHost", data_size=(5, 7), dtype="int64")
    np.testing.assert_array_equal(b["host"], b["device"])
    b = run_and_buffers("CopyDeviceToDevice", data_size=9, dtype="complex64")
    np.testing.assert_array_equal(b["dst"], b["src"])


def test_sleep_duration_is_timed():
    t = get_kernel("Sleep")(duration=0.02)
    assert t.host_dt >= 0.02
    with pytest.raises(ValueError, match="duration"):
        get_kernel("Sleep")(duration=-1)


def test_inputs_are_cached_per_kernel_device_shape_dtype():
    k = get_kernel("AXPY")
    a = k.buffers(data_size=(4, 4))
    assert get_kernel("axpy").buffers(data_size=(4, 4))["x"] is a["x"]  # new object, same inputs
    assert k.buffers(data_size=(4, 5))["x"] is not a["x"]
    assert k.buffers(data_size=(4, 4), dtype="float64")["x"] is not a["x"]
    assert get_kernel("InplaceCompute").buffers(data_size=(4, 4))["x"] is not a["x"]
    clear_cache()
    assert k.buffers(data_size=(4, 4))["x"] is not a["x"]


def test_seeded_inputs_are_reproducible():
    a = get_kernel("MatMulSimple2D").buffers(data_size=(6, 6))["a"].copy()
    clear_cache()
    np.testing.assert_array_equal(get_kernel("MatMulSimple2D").buffers(data_size=(6, 6))["a"], a)
    assert np.abs(a).max() <= 1.0


def test_concurrent_calls_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    k = get_kernel("MatMulSimple2D")
    sizes = [(8 + i % 4, 8 + i % 4) for i in range(16)]  # four shapes: cache inserts race too
    with ThreadPoolExecutor(4) as pool:
        timings = list(pool.map(lambda size: k(data_size=size), sizes))
    assert all(isinstance(t, KernelTiming) and t.host_dt == t.device_dt > 0 for t in timings)
    for size in set(sizes):
        b = k.buffers(data_size=size)
        np.testing.assert_allclose(b["c"], b["a"] @ b["b"], rtol=1e-5)


def test_kernel_pickles_after_use():
    import pickle

    k = get_kernel("AXPY")
    k(data_size=8)
    clone = pickle.loads(pickle.dumps(k))
    assert (clone.name, clone.family) == ("AXPY", "compute")
    clone(data_size=8, alpha=2.0)
    b = clone.buffers(data_size=8, alpha=2.0)
    np.testing.assert_allclose(b["z"], 2.0 * b["x"] + b["y"], rtol=1e-6)
