# ruff: noqa
# The "Basic" example of the original SimAI-Bench README, unchanged except for its
# import lines (SimAIBench -> simai.bench). The first component is type="remote", so it
# really launches through mpiexec. Run: python examples/readme_basic.py
# (or `simai run examples/readme_basic.py` for the progress display, the per-component
# table, the trace and an exit code that says whether every component succeeded).
from simai.bench import Workflow, Simulation, ServerManager, server_registry
from simai.bench import OchestratorConfig, SystemConfig

# Initialize the server for data staging
server_config = server_registry.create_config("filesystem")
server = ServerManager("server", config=server_config)
server.start_server()
server_info = server.get_server_info()

# Initialize the workflow with orchestrator and system configurations
orchestrator_config = OchestratorConfig(name="thread-pool")
system_config = SystemConfig(name="local", ncpus=4, ngpus=0)

w = Workflow(orchestrator_config=orchestrator_config, system_config=system_config)


# Add the first simulation component to the workflow
@w.component(
    name="sim",
    type="remote",  # set remote execution, meaning launching through mpirun/mpiexec, needed for multi-node or MPI components
    args={"server_info": server_info},
)
def run_sim(server_info: dict):
    sim = Simulation(name="sim", server_info=server_info)
    sim.add_kernel("MatMulSimple2D")
    sim.run()
    sim.stage_write("key", "value")  # write data to the staging backend


# Add the second simulation component to the workflow
@w.component(
    name="sim2",
    type="local",  # set local execution, meaning launching through Python mp.Process on the local node
    args={"server_info": server_info},
    dependencies=["sim"],
)  # set a dependency on the first simulation component
def run_sim2(server_info: dict):
    sim = Simulation(name="sim2", server_info=server_info)
    sim.add_kernel("MatMulGeneral")
    value = sim.stage_read("key")  # read data from the staging backend
    sim.run()


# Execute the workflow
w.launch()

# Stop the server
server.stop_server()
