"""Every benchmark suite in one command, each in its own process; the staging plot too.

    python bench/run_all.py [--quick] [--json DIR]

The same as ``simai bench all``: results go to ``DIR/<suite>.json`` (default
``bench/results/``) and the staging plot to ``DIR/datastore.png``. A suite that is
missing is skipped and named; the exit code is non-zero when a suite failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import parser


def main() -> int:
    p = parser("Run every simai benchmark suite")
    args = p.parse_args()
    here = Path(__file__).resolve().parent
    out = Path(args.json) if args.json else here / "results"
    from rich.console import Console

    from simai.bench._benchrun import run_suites

    return run_suites(
        "all", quick=args.quick, json_path=out, plot=None, bench_dir=here, console=Console()
    )


if __name__ == "__main__":
    sys.exit(main())
