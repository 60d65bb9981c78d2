# ruff: noqa
# The "Advanced" (dynamic workflow) example of the original SimAI-Bench README,
# unchanged except for its import lines: SimAIBench -> simai.bench (the submodule
# paths simai.bench.orchestrator, .component and .datastore exist for exactly this;
# `from simai.bench import Orchestrator, OrchetratorClient, WorkflowComponent, DataStore`
# works too). Run: python examples/readme_dynamic.py  (ten chained 1 s tasks, ~20 s
# with the example's own 5 s and 10 s polling sleeps)
from simai.bench import ServerManager, server_registry, OchestratorConfig, SystemConfig
from simai.bench.orchestrator import Orchestrator, OrchetratorClient
from simai.bench.component import WorkflowComponent
from simai.bench.datastore import DataStore
import time


# Define a parent task that dynamically generates child tasks
def dynamic_sim(client: OrchetratorClient, server_info: dict, ntasks: int = 10):
    """
    A task that dynamically generates a chain of dependent tasks at runtime.
    Each child task reads data, validates it, modifies it, and writes it back.
    """
    # Initialize data store and write initial value
    ds = DataStore("ds", server_info=server_info)
    ds.stage_write("key", "sim")

    # Define the child task function
    def sub_sim(simid: int, ds: DataStore):
        import time

        # Read current value from staging backend
        value = ds.stage_read("key")

        # Validate the expected value based on task sequence
        expected = "sim" + "".join([f"-sim{i}" for i in range(simid)])
        assert value == expected, f"{value} != {expected}"

        # Append task identifier and write back
        ds.stage_write("key", value + f"-sim{simid}")
        time.sleep(1)

    # Dynamically create a chain of tasks with dependencies
    futures = []
    for i in range(ntasks):
        # Set dependency on previous task (except first task)
        dependencies = [f"sim{i - 1}"] if i > 0 else []

        # Submit task to orchestrator
        future = client.submit(
            WorkflowComponent(
                f"sim{i}",
                sub_sim,
                type="local",
                args={"simid": i, "ds": ds},
                dependencies=dependencies,
            )
        )
        futures.append(future)

    # Wait for all tasks to complete
    while not all([future.done() for future in futures]):
        time.sleep(5)


# Initialize data staging server
server_config = server_registry.create_config("filesystem")
server = ServerManager("server", server_config)
server.start_server()
server_info = server.get_server_info()

# Create orchestrator configurations
orchestrator_config = OchestratorConfig(name="thread-pool", profile=False)
system_config = SystemConfig(name="local", ncpus=12, ngpus=0)

# Start the orchestrator manually for dynamic workflow control
orchestrator = Orchestrator(system_config, orchestrator_config)
client = orchestrator.start()

# Submit the parent task that will generate child tasks dynamically
component = WorkflowComponent(
    "sim",
    executable=dynamic_sim,
    type="local",
    args={"client": client, "server_info": server_info, "ntasks": 10},
)

future = client.submit(component)

# Wait for completion
while not future.done():
    print("Waiting for workflow completion...")
    time.sleep(10)

# Cleanup
orchestrator.wait(timeout=10)
orchestrator.stop()
server.stop_server()
