# The sorter and fine-tuning steps of SimAI-Bench's ml_docking, as local components.
from simai.bench.compat import DataStore
from simai.bench.compat.utils import create_logger


def sorter_main(infer_serverinfo, top_candidate_serverinfo, niters=3):
    infer_ds = DataStore(name="sorter", server_info=infer_serverinfo)
    top_ds = DataStore(name="top_candidates", server_info=top_candidate_serverinfo)
    scored = [
        infer_ds.stage_read(f"infer_smile_{idx}_{it}", timeout=60)
        for it in range(niters)
        for idx in range(10)
    ]
    top = sorted(scored, reverse=True)[:5]
    top_ds.stage_write("top_candidates", [list(t) for t in top])
    create_logger("sorter").info(f"sorted {len(scored)} scores")
    return len(scored)


def finetune_main(top_candidate_serverinfo):
    top_ds = DataStore(name="finetune", server_info=top_candidate_serverinfo)
    top = top_ds.stage_read("top_candidates", timeout=60)
    top_ds.stage_write("new_model_0", {"trained_on": len(top)})
    return [score for score, _ in top]
