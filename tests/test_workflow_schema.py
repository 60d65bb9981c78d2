"""docs/workflow.schema.json is what `simai schema` generates from the layers' models today."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_published_schema_is_regenerated_identically(tmp_path):
    simai = shutil.which("simai") or str(Path(sys.executable).with_name("simai"))
    out = tmp_path / "schema.json"
    subprocess.run([simai, "schema", "--out", str(out)], check=True, timeout=120)
    published = ROOT / "docs" / "workflow.schema.json"
    assert json.loads(out.read_text()) == json.loads(published.read_text()), (
        "docs/workflow.schema.json is stale: regenerate it with "
        "simai schema --out docs/workflow.schema.json"
    )
    # The generated file covers the embedded layers' fields, e.g. GPU tiles and run budgets.
    comp = json.loads(out.read_text())["$defs"]["ComponentSpec"]["properties"]
    assert {"gpu_affinity", "return_dim", "retries", "timeout"} <= set(comp)
