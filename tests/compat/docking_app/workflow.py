# In the shape of SimAI-Bench's examples/ml_docking/workflow.py, after the rename
# (plus the __main__ guard that simai's process pool needs).
import argparse
import json
import random
import string

from inference import infer_main
from sorter import finetune_main, sorter_main

from simai.bench.compat import (
    DataStore,
    OchestratorConfig,
    ServerManager,
    SystemConfig,
    Workflow,
    server_registry,
)
from simai.bench.compat.utils import get_nodes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server_type", default="filesystem")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    all_nodes = get_nodes()
    config = OchestratorConfig(name="process-pool")
    system_config = SystemConfig(name="cluster", cpus=[0, 1], ncpus=2, ngpus=0)
    if args.server_type == "filesystem":
        infer_server_config = server_registry.create_config(
            type="filesystem", server_address=".inference_store"
        )
        top_config = server_registry.create_config(
            type="filesystem", server_address=".top_candidate_datastore"
        )
    else:
        infer_server_config = server_registry.create_config(type=args.server_type)
        top_config = server_registry.create_config(type=args.server_type)
    infer_dataserver = ServerManager(name="inference", config=infer_server_config)
    top_dataserver = ServerManager(name="top_candidate", config=top_config)
    for server in (infer_dataserver, top_dataserver):
        server.start_server()
    infer_serverinfo = infer_dataserver.get_server_info()
    top_serverinfo = top_dataserver.get_server_info()

    infer_ds = DataStore(name="inference_data", server_info=infer_serverinfo)
    for smile_num in range(100):
        smile = "".join(random.choices(string.ascii_letters + string.digits, k=10))
        infer_ds.stage_write(f"smile_{smile_num}", smile)

    workflow = Workflow(orchestrator_config=config, system_config=system_config)
    args_ = {"infer_serverinfo": infer_serverinfo, "top_candidate_serverinfo": top_serverinfo}
    workflow.register_component(
        name="inference",
        executable=infer_main,
        type="remote",
        nodes=all_nodes[:1],
        ppn=2,
        args=args_,
    )
    workflow.register_component(name="sorter", executable=sorter_main, type="local", args=args_)
    workflow.register_component(
        name="finetune",
        executable=finetune_main,
        type="local",
        args={"top_candidate_serverinfo": top_serverinfo},
        dependencies=["sorter"],
    )
    result = workflow.launch()
    for server in (infer_dataserver, top_dataserver):
        server.stop_server()
    with open(args.out, "w") as f:
        json.dump({c.name: [c.status, c.value, c.error] for c in result}, f, default=str)


if __name__ == "__main__":
    main()
