"""Engine settings a cluster user writes in the workflow file, checked without starting them."""

from __future__ import annotations

import pytest

from simai.orchestrator import OrchestratorConfig


@pytest.mark.parsl
def test_parsl_htex_provider_launcher_and_blocks_come_from_the_config():
    pytest.importorskip("parsl")
    cfg = OrchestratorConfig(
        name="parsl-htex",
        provider="pbspro",
        provider_options={"account": "MyProject", "queue": "debug", "nodes_per_block": 4},
        launcher="mpiexec",
        init_blocks=2,
        max_blocks=3,
        max_workers=6,
    ).executor_config()
    provider = cfg._provider()
    assert type(provider).__name__ == "PBSProProvider"
    assert (provider.account, provider.queue, provider.nodes_per_block) == ("MyProject", "debug", 4)
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (2, 1, 3)
    assert type(provider.launcher).__name__ == "MpiExecLauncher"
    slurm = OrchestratorConfig(name="parsl-htex", provider="slurm", launcher="srun")
    assert type(slurm.executor_config()._provider().launcher).__name__ == "SrunLauncher"


@pytest.mark.parsl
def test_parsl_htex_bad_settings_name_the_field():
    pytest.importorskip("parsl")
    with pytest.raises(ValueError, match="min_blocks <= init_blocks <= max_blocks"):
        OrchestratorConfig(name="parsl-htex", init_blocks=4, max_blocks=2)
    with pytest.raises(ValueError, match="provider"):
        OrchestratorConfig(name="parsl-htex", provider="lsf")
    cfg = OrchestratorConfig(name="parsl-htex", provider_options={"acount": "x"}).executor_config()
    with pytest.raises(ValueError, match=r"provider_options: \['acount'\] are not options"):
        cfg._provider()


@pytest.mark.dask
def test_dask_attaches_by_address_or_scheduler_file_not_both():
    cfg = OrchestratorConfig(name="dask", scheduler_file="/shared/sched.json").executor_config()
    assert cfg.scheduler_file == "/shared/sched.json" and cfg.address is None
    with pytest.raises(ValueError, match="address or scheduler_file, not both"):
        OrchestratorConfig(name="dask", address="tcp://127.0.0.11:8786", scheduler_file="/s.json")
