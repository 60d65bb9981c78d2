"""Allocations and launch command lines, built without a scheduler present.

The golden strings follow each launcher's documented syntax:
- PALS: HPE Cray ``mpiexec`` as on ALCF Aurora/Polaris (``-n N --ppn P --hosts a,b
  --cpu-bind list:1-8:9-16 --envlist A,B``);
- Slurm ``srun(1)``: ``--nodes --ntasks --ntasks-per-node --nodelist
  --cpu-bind=map_cpu:|mask_cpu: --export=ALL,NAME``;
- MPICH Hydra: ``-hosts -ppn -bind-to user:a+b,c+d -genvlist``;
- Open MPI ``mpirun(1)``: ``--host h:slots --map-by ppr:N:node --cpu-set --bind-to core -x NAME``.
"""

from __future__ import annotations

import os

import pytest

from simai.orchestrator import WorkflowComponent
from simai.orchestrator.allocation import Allocation, expand_nodelist, virtual_cluster
from simai.orchestrator.launchers import LaunchRequest, bind_rank, detect_launcher, get_launcher
from simai.orchestrator.mpi import build_mpiexec_command
from simai.orchestrator.protocols import Launcher

AURORA = LaunchRequest(
    argv=("./nekrs", "--setup", "turb"),
    nprocs=12,
    ppn=6,
    hosts=("x4102c5s2b0n0", "x4102c5s3b0n0"),
    cpus=(1, 9, 17, 25, 33, 41),
    env_names=("REDIS_URL", "OMP_NUM_THREADS"),
)


def test_pals_command_matches_the_cray_mpiexec_syntax():
    assert " ".join(get_launcher("pals").command(AURORA)) == (
        "mpiexec -n 12 --ppn 6 --hosts x4102c5s2b0n0,x4102c5s3b0n0 "
        "--cpu-bind list:1:9:17:25:33:41 --envlist REDIS_URL,OMP_NUM_THREADS "
        "./nekrs --setup turb"
    )
    blocks = LaunchRequest(argv=("a.out",), nprocs=2, ppn=2, cpus=tuple(range(1, 17)))
    assert get_launcher("pals").command(blocks) == [
        "mpiexec",
        "-n",
        "2",
        "--ppn",
        "2",
        "--cpu-bind",
        "list:1-8:9-16",
        "a.out",
    ]


def test_srun_command_matches_the_slurm_syntax():
    assert " ".join(get_launcher("srun").command(AURORA)) == (
        "srun --nodes=2 --ntasks=12 --ntasks-per-node=6 "
        "--nodelist=x4102c5s2b0n0,x4102c5s3b0n0 --cpu-bind=map_cpu:1,9,17,25,33,41 "
        "--export=ALL,REDIS_URL,OMP_NUM_THREADS ./nekrs --setup turb"
    )
    two_cores_each = LaunchRequest(argv=("a.out",), nprocs=2, ppn=2, cpus=(0, 1, 2, 3))
    assert get_launcher("srun").command(two_cores_each) == [
        "srun",
        "--nodes=1",
        "--ntasks=2",
        "--ntasks-per-node=2",
        "--cpu-bind=mask_cpu:0x3,0xc",
        "--export=ALL",
        "a.out",
    ]


def test_mpich_and_openmpi_commands():
    req = LaunchRequest(
        argv=("a.out",),
        nprocs=4,
        ppn=2,
        hosts=("n1", "n2"),
        cpus=(0, 1, 2, 3),
        env_names=("K",),
        extra_args=("-l",),
    )
    assert " ".join(get_launcher("mpich").command(req)) == (
        "mpiexec -n 4 -hosts n1,n2 -ppn 2 -bind-to user:0+1,2+3 -genvlist K -l a.out"
    )
    assert " ".join(get_launcher("openmpi").command(req)) == (
        "mpiexec -n 4 --host n1:2,n2:2 --map-by ppr:2:node --cpu-set 0-3 --bind-to core "
        "-x K -l a.out"
    )


@pytest.mark.parametrize("name", ["mpich", "openmpi", "pals", "srun"])
def test_no_secret_reaches_the_command_line(name):
    secret = "redis://alice:s3cr3t-pw@10.0.0.1:6379"
    cmd = build_mpiexec_command(["a.out"], 2, 1, ["n1", "n2"], {"REDIS_URL": secret}, launcher=name)
    assert not any("s3cr3t" in part for part in cmd)
    assert any("REDIS_URL" in part for part in cmd)  # passed by name
    assert isinstance(get_launcher(name), Launcher)


def test_launcher_choice_is_detected_and_overridable(monkeypatch):
    assert detect_launcher({"SIMAI_ORCHESTRATOR_LAUNCHER": "pals"}) == "pals"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_launcher({}) == "mpich"  # no srun, no mpiexec: Hydra's spelling
    with pytest.raises(ValueError, match="did you mean 'openmpi'"):
        get_launcher("open-mpi")
    with pytest.raises(ValueError, match=r"launcher.*did you mean 'pals'"):
        WorkflowComponent("x", "a.out", type="remote", launcher="pal")
    comp = WorkflowComponent("x", "a.out", type="remote", launcher="srun", launcher_args=["-l"])
    assert comp.launcher == "srun" and comp.launcher_args == ["-l"]


def test_slurm_nodelists_expand_without_scontrol():
    assert expand_nodelist("nid[001-003,007],login1") == [
        "nid001",
        "nid002",
        "nid003",
        "nid007",
        "login1",
    ]
    assert expand_nodelist("r[1-2]-n[08-09]") == ["r1-n08", "r1-n09", "r2-n08", "r2-n09"]
    assert expand_nodelist("gpu-[9-10]-ib") == ["gpu-9-ib", "gpu-10-ib"]
    assert len(expand_nodelist("x[0000-0999]")) == 1000
    for bad in ("nid[001-", "nid[a-b]", "nid[5-1]", "nid[0-99999999]", "r[1-999]-n[1-999]"):
        with pytest.raises(ValueError, match="SLURM_NODELIST"):
            expand_nodelist(bad)


def test_allocations_from_pbs_slurm_hostfile_and_list(tmp_path):
    pbs = tmp_path / "pbs"
    pbs.write_text("x1\nx1\nx2\nx2\n")
    assert Allocation.detect({"PBS_NODEFILE": str(pbs)}).nodes == ("x1", "x2")
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# our nodes\nn1 slots=4\nn2:4\n\nn3\n")
    assert Allocation.from_hostfile(hostfile).nodes == ("n1", "n2", "n3")
    slurm = Allocation.detect({"SLURM_JOB_NODELIST": "c[1-3]"})
    assert slurm.nodes == ("c1", "c2", "c3") and slurm.source == "SLURM_JOB_NODELIST"
    assert not Allocation.detect({})
    assert Allocation.from_list(["a", "b", "a"]).nodes == ("a", "b")
    with pytest.raises(ValueError, match="PBS_NODEFILE"):
        Allocation.detect({"PBS_NODEFILE": str(tmp_path / "missing")})
    os.mkfifo(tmp_path / "fifo")  # a planted FIFO must fail at once, never block the run
    with pytest.raises(ValueError, match="not a regular file"):
        Allocation.detect({"PBS_NODEFILE": str(tmp_path / "fifo")})


def test_virtual_cluster_writes_a_private_nodefile(tmp_path):
    env = virtual_cluster(4, tmp_path / "vc")
    assert Allocation.detect(env).nodes == ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
    assert os.stat(tmp_path / "vc").st_mode & 0o777 == 0o700
    assert env["HYDRA_LAUNCHER"] == "fork"
    os.symlink(tmp_path / "vc", tmp_path / "link")
    with pytest.raises(ValueError, match="not a directory of ours"):
        virtual_cluster(2, tmp_path / "link")


def test_each_rank_gets_its_node_and_its_own_gpus():
    env = {
        "PMI_HOSTNAME": "127.0.0.12",
        "MPI_LOCALRANKID": "1",
        "SIMAI_GPU_MAP": "0.0,0.1;1.0,1.1",
        "SIMAI_GPU_VAR": "ZE_AFFINITY_MASK",
    }
    bind_rank(env)
    assert env["SIMAI_NODE"] == "127.0.0.12" and env["ZE_AFFINITY_MASK"] == "1.0,1.1"
