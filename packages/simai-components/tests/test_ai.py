"""The AI component: lazy torch, models, paced training and inference, staged data."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pydantic import ValidationError

from simai.components import AI, Histogram, NoDataStoreError
from simai.datastore import ServerManager, server_registry


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_does_not_import_torch():
    proc = _python("""
        import sys
        import simai.components
        from simai.components import AI, Simulation
        assert "torch" not in sys.modules, "torch imported"
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_missing_torch_names_the_extra():
    proc = _python("""
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        from simai.components import AI
        try:
            AI("a")
        except ImportError as exc:
            print(exc)
    """)
    assert "pip install 'simai-components[ai]'" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("model_type", "config", "sample_shape", "out_dim"),
    [
        ("feedforward", {"input_dim": 12, "output_dim": 3, "neurons_per_layer": 16}, (12,), 3),
        (
            "cnn",
            {"in_channels": 2, "image_size": (8, 8), "channels": (4, 8), "output_dim": 5},
            (2, 8, 8),
            5,
        ),
        (
            "transformer",
            {
                "seq_len": 6,
                "input_dim": 4,
                "d_model": 16,
                "nhead": 2,
                "num_layers": 1,
                "dim_feedforward": 32,
                "output_dim": 7,
            },
            (6, 4),
            7,
        ),
    ],
)
def test_models_train_and_predict(model_type, config, sample_shape, out_dim):
    ai = AI("a", model_type=model_type, model_config=config, seed=0, batch_size=4, data_size=16)
    assert ai.input_shape == sample_shape
    res = ai.train(run_count=3)
    assert res.batches == 3 and len(ai.losses) == 3
    out = ai.predict(np.zeros((5, *sample_shape), np.float32))
    assert out.shape == (5, out_dim)
    assert ai.infer(run_count=2).batches == 2


def test_original_flat_keywords_still_work():
    ai = AI(num_hidden_layers=2, input_dim=10, output_dim=10, neurons_per_layer=8, data_size=8)
    assert ai.model_config.num_hidden_layers == 2
    elapsed, count = ai.train(run_count=1)  # unpacks like the original (elapsed, count)
    assert count == 1 and elapsed > 0


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="num_hiden_layers"):
        AI("a", num_hiden_layers=2)
    with pytest.raises(ValidationError, match="batch_size"):
        AI("a", batch_size=0)
    with pytest.raises(ValidationError, match="nhead"):
        AI("a", model_type="transformer", model_config={"d_model": 10, "nhead": 3})
    with pytest.raises(ValueError, match="did you mean 'transformer'"):
        AI("a", model_type="transfomer")


def test_data_shape_mismatch_is_explained():
    ai = AI("a", input_dim=4, output_dim=4, neurons_per_layer=8)
    with pytest.raises(ValueError, match=r"samples of shape \(4,\)"):
        ai.train(run_count=1, data=np.zeros((10, 5), np.float32))
    ai2 = AI("b", input_dim=4, output_dim=2, neurons_per_layer=8)
    with pytest.raises(ValueError, match="output_dim"):
        ai2.train(run_count=1, data=np.zeros((10, 4), np.float32))


def test_timed_training_records_target_and_achieved():
    ai = AI("a", input_dim=16, output_dim=16, neurons_per_layer=32, batch_size=8, seed=1)
    for _ in range(4):
        ai.train(run_time=0.02)
    ai.infer(run_time=0.01)
    ai.train(run_count=2)
    assert [r.target_s for r in ai.records] == [0.02] * 4 + [0.01, None]
    assert all(r.achieved_s > 0 for r in ai.records)
    rep = ai.fidelity("train")
    errs = [abs(r.achieved_s - 0.02) / 0.02 for r in ai.records[:4]]
    assert rep.count == 4 and rep.median == pytest.approx(np.median(errs))
    assert ai.fidelity().count == 5


def test_histogram_targets_replay_with_a_seed():
    def run(seed):
        ai = AI(
            "a",
            input_dim=4,
            output_dim=4,
            neurons_per_layer=4,
            batch_size=4,
            data_size=8,
            seed=seed,
        )
        hist = Histogram([1, 2, 3], [0.3, 0.3, 0.4])
        return [ai.train(run_count=hist).batches for _ in range(10)]

    assert run(3) == run(3)


@pytest.fixture
def fs_info(tmp_path):
    cfg = server_registry.create_config("filesystem", server_address=str(tmp_path / "stage"))
    with ServerManager("server", config=cfg) as server:
        yield server.get_server_info()


def test_training_on_staged_data_reduces_loss(fs_info):
    """A simulation stages (x, y) chunks of a learnable linear map; the AI reads them
    lazily through a staged-key iterator and learns it."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 2)).astype(np.float32)
    from simai.components import Simulation

    producer = Simulation("sim", server_info=fs_info)
    for i in range(4):
        x = rng.standard_normal((64, 8)).astype(np.float32)
        producer.stage_write(f"x_{i}", x)
        producer.stage_write(f"y_{i}", x @ w)
    x_test = rng.standard_normal((128, 8)).astype(np.float32)

    ai = AI(
        "train",
        server_info=fs_info,
        input_dim=8,
        output_dim=2,
        neurons_per_layer=32,
        num_hidden_layers=1,
        dropout=0.0,
        use_batchnorm=False,
        lr=1e-2,
        batch_size=16,
        seed=0,
    )
    before = ai.evaluate((x_test, x_test @ w))
    stream = ai.staged([f"x_{i}" for i in range(4)], [f"y_{i}" for i in range(4)], timeout=10)
    ai.train(run_count=300, data=stream)
    after = ai.evaluate((x_test, x_test @ w))
    assert after < 0.1 * before


def test_autoencoder_on_a_single_array():
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((2, 6)).astype(np.float32)
    snapshots = rng.standard_normal((256, 2)).astype(np.float32) @ basis  # rank-2 data
    ai = AI(
        "ae",
        input_dim=6,
        output_dim=6,
        neurons_per_layer=16,
        dropout=0.0,
        use_batchnorm=False,
        lr=1e-2,
        batch_size=32,
        seed=0,
    )
    before = ai.evaluate(snapshots)
    ai.train(run_count=200, data=snapshots)
    assert ai.evaluate(snapshots) < 0.2 * before


def test_staging_needs_a_datastore():
    ai = AI("a", input_dim=4, output_dim=4, neurons_per_layer=4)
    with pytest.raises(NoDataStoreError):
        ai.stage_read("k")
    with pytest.raises(NoDataStoreError):
        next(ai.staged(["k"]))


def test_single_process_ddp_initialises_and_closes():
    # In a subprocess: a process group's threads must not outlive this test, and a hang
    # in gloo's teardown would be beyond pytest-timeout's reach inside this process.
    proc = _python("""
        import torch.distributed as dist
        from simai.components import AI

        with AI("a", input_dim=4, output_dim=4, neurons_per_layer=4, ddp=True,
                data_size=16, batch_size=4) as ai:
            assert ai.world_size == 1 and dist.is_initialized()
            ai.train(run_count=2)
        assert not dist.is_initialized()
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.gpu
def test_ai_and_simulation_on_cuda():
    from simai.components import Simulation

    ai = AI("gpu", device="cuda", input_dim=16, output_dim=16, neurons_per_layer=32, seed=0)
    ai.train(run_time=0.02)
    ai.infer(run_count=2)
    assert ai.records[0].achieved_s >= 0.02 - ai.records[0].overhead_s
    sim = Simulation("gpu", device="cuda")
    sim.add_kernel("MatMulSimple2D", run_time=0.01, data_size=(512, 512))
    sim.run(3)
    assert all(r.achieved_s >= 0.01 - r.overhead_s for r in sim.records)


def test_iterable_of_chunks_is_read_lazily_and_then_cycled():
    pulled = []

    def chunks():
        for i in range(3):
            pulled.append(i)
            yield np.full((8, 4), i, np.float32)

    ai = AI("a", input_dim=4, output_dim=4, neurons_per_layer=4, batch_size=8, shuffle=False)
    ai.train(run_count=1, data=chunks())
    assert pulled == [0]  # only what one batch needed
    ai.train(run_count=5)  # uses up the stream, then cycles over the 3 chunks received
    assert pulled == [0, 1, 2]
    with pytest.raises(ValueError, match="streamed"):
        AI("b", input_dim=4, output_dim=4, neurons_per_layer=4).train(data=chunks())
