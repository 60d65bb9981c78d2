"""Per-rank HDF5 I/O kernels in one process (collective ones: test_mpi_kernels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simai.kernels import get_kernel

h5py = pytest.importorskip("h5py", reason="h5py is not installed (the simai-kernels[hdf5] extra)")


def test_write_then_read_roundtrip(tmp_path):
    w, r = get_kernel("WriteNonMPI"), get_kernel("ReadNonMPI")
    w(data_size=(32, 4), dtype="float64", path=tmp_path)
    with h5py.File(tmp_path / "data_0.h5") as f:
        on_disk = f["data"][...]
    written = w.buffers(data_size=(32, 4), dtype="float64", path=tmp_path)["host"]
    np.testing.assert_array_equal(on_disk, written)
    r(data_size=(32, 4), dtype="float64", path=tmp_path)
    np.testing.assert_array_equal(
        r.buffers(data_size=(32, 4), dtype="float64", path=tmp_path)["host"], written
    )


def test_rank_from_launcher_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PMI_RANK", "3")
    get_kernel("WriteNonMPI")(data_size=4, path=tmp_path, filename_suffix="s1")
    assert (tmp_path / "data_3_s1.h5").exists()
    get_kernel("WriteSingleRank")(data_size=4, path=tmp_path)
    assert not (tmp_path / "data.h5").exists()  # only rank 0 writes
    monkeypatch.setenv("PMI_RANK", "0")
    get_kernel("WriteSingleRank")(data_size=4, path=tmp_path)
    assert (tmp_path / "data.h5").exists()


def test_num_bytes_sets_size(tmp_path):
    get_kernel("WriteNonMPI")(num_bytes=4096, path=tmp_path, fsync=True)
    with h5py.File(tmp_path / "data_0.h5") as f:
        assert f["data"].shape == (1024,) and f["data"].dtype == np.float32


def test_read_missing_file(tmp_path):
    r = get_kernel("ReadNonMPI")
    with pytest.raises(FileNotFoundError, match="run WriteNonMPI"):
        r(path=tmp_path, create_missing=False)
    r(data_size=16, path=tmp_path)  # default: written first, untimed, then read
    assert np.isfinite(r.buffers(data_size=16, path=tmp_path)["host"]).all()
    assert r.buffers(data_size=16, path=tmp_path)["host"].any()


def test_read_with_wrong_size_names_shapes(tmp_path):
    get_kernel("WriteNonMPI")(data_size=10, path=tmp_path)
    with pytest.raises(ValueError, match=r"has shape \(10,\), expected \(12,\)"):
        get_kernel("ReadNonMPI")(data_size=12, path=tmp_path)


@pytest.mark.parametrize("suffix", ["../escape", "a/b", ".hidden", "", "x y"])
def test_suffix_cannot_escape_directory(tmp_path, suffix):
    with pytest.raises(ValueError, match=r"filename_suffix"):
        get_kernel("WriteNonMPI")(data_size=4, path=tmp_path, filename_suffix=suffix)


def test_collective_mpio_without_parallel_h5py_is_a_clear_error_fake_comm():
    if h5py.get_config().mpi:
        pytest.skip("this h5py has the mpio driver")
    with pytest.raises(RuntimeError, match=r"build-parallel-h5py\.sh"):
        # check() runs before MPI is touched, so this does not initialise MPI here
        get_kernel("WriteWithMPI").resolve("cpu", 4, "float32", _FakeComm(), {"method": "mpio"})


class _FakeComm:
    """Just enough of a communicator for argument checks (no MPI in the pytest process)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1
