"""`simai bench`: run the repository's benchmark suites and plot the staging results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

SUITES = (
    "datastore",
    "orchestrator",
    "kernels",
    "fidelity",
    "startup",
    "profiling",
    "report",
    "cluster",
)


class BenchNotFound(LookupError):
    pass


def find_bench_dir(explicit: Path | None = None) -> Path:
    """``--bench-dir``/``SIMAI_BENCH_DIR``, else the nearest ``bench/`` above the working directory."""
    if explicit is not None:
        if not (explicit / "_common.py").is_file():
            raise BenchNotFound(f"{explicit} is not a simai bench folder (it has no _common.py)")
        return explicit
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "bench" / "_common.py").is_file():
            return folder / "bench"
        if folder.name == "bench" and (folder / "_common.py").is_file():
            return folder
    raise BenchNotFound(
        "no bench/ folder found: the benchmarks live in the simai repository, not in the "
        "installed package. Run this from a clone (git clone ... && cd simai) or point "
        "SIMAI_BENCH_DIR (or --bench-dir) at its bench/ folder."
    )


def run_suites(
    suite: str,
    *,
    quick: bool,
    json_path: Path | None,
    plot: Path | None,
    bench_dir: Path | None,
    console: Any,
) -> int:
    from rich.markup import escape

    folder = find_bench_dir(bench_dir)
    names = SUITES if suite == "all" else (suite,)
    available = [n for n in names if (folder / f"{n}.py").is_file()]
    missing = [n for n in names if n not in available]
    if suite != "all" and missing:
        present = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
        raise BenchNotFound(
            f"{folder}/{suite}.py does not exist (suites here: {', '.join(present) or 'none'})"
        )
    if not available:
        raise BenchNotFound(f"{folder} holds none of the suites {', '.join(SUITES)}")
    for n in missing:
        console.print(f"[yellow]skipping[/] {n}: {escape(str(folder))}/{n}.py does not exist")
    worst = 0
    tmp = tempfile.TemporaryDirectory(prefix="simai-bench-")
    with tmp:
        for name in available:
            if json_path is None:
                out_json = Path(tmp.name) / f"{name}.json"
            elif suite == "all":
                json_path.mkdir(parents=True, exist_ok=True)
                out_json = json_path / f"{name}.json"
            else:
                out_json = json_path
            cmd = [sys.executable, str(folder / f"{name}.py"), "--json", str(out_json)]
            if quick:
                cmd.append("--quick")
            console.print(f"[bold]running[/] {escape(' '.join(cmd[1:]))}", soft_wrap=True)
            code = subprocess.call(cmd, cwd=folder.parent, env=dict(os.environ))
            if code != 0:
                console.print(f"[bold red]{name} failed[/] (exit code {code})")
                worst = worst or code
                continue
            if name == "datastore" and out_json.is_file():
                png = plot or (
                    out_json.with_suffix(".png") if json_path else Path("bench-datastore.png")
                )
                try:
                    if staging_plot(out_json, png):
                        console.print(f"wrote the staging plot {escape(str(png))}")
                except ImportError as exc:
                    console.print(f"[yellow]no staging plot:[/] {escape(str(exc))}")
    return 1 if worst else 0


@click.command()
@click.argument("suite", type=click.Choice([*SUITES, "all"]), default="all", required=False)
@click.option("--quick", is_flag=True, help="Fewer sizes and rounds.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Write the results as JSON: a file, or for all suites a directory (one SUITE.json each).",
)
@click.option(
    "--plot",
    "plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Staging plot path for the datastore suite (default: next to the JSON, else bench-datastore.png).",
)
@click.option(
    "--bench-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SIMAI_BENCH_DIR",
    help="Folder holding the suites (default: ./bench, or SIMAI_BENCH_DIR).",
)
def bench(
    suite: str, quick: bool, json_path: Path | None, plot: Path | None, bench_dir: Path | None
) -> None:
    """Run the repository's benchmark suites (bench/SUITE.py; all of them without SUITE).

    Every figure is a ratio against a reference measured in the same run.
    """
    from simai.bench.cli import _console, _fail

    try:
        code = run_suites(
            suite,
            quick=quick,
            json_path=json_path,
            plot=plot,
            bench_dir=bench_dir,
            console=_console(),
        )
    except BenchNotFound as exc:
        _fail(str(exc))
    sys.exit(code)


# ---------------------------------------------------------------------------- the plot
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)\b")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def _size_of(result: dict[str, Any]) -> float | None:
    extra = result.get("extra") or {}
    for key in ("size_bytes", "nbytes", "bytes", "size"):
        v = extra.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    m = _SIZE.search(result.get("case", ""))
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def _method_of(result: dict[str, Any]) -> str:
    extra = result.get("extra") or {}
    for key in ("method", "backend", "transport"):
        if isinstance(extra.get(key), str):
            return extra[key]
    case = _SIZE.sub("", result.get("case", "")).strip()
    return re.sub(r"\s+", " ", case)


def _rate(result: dict[str, Any], size: float, which: str) -> float | None:
    """MB/s moved by ``which`` ("ours" or "reference") for one write+read of ``size`` bytes."""
    extra = result.get("extra") or {}
    for key in (
        (f"{which}_mb_per_s", f"{which}_mbps")
        if which == "reference"
        else ("mb_per_s", "mbps", "ours_mb_per_s")
    ):
        v = extra.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    value = result.get(which)
    unit = result.get("unit", "s")
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    if unit in ("MB/s", "MBps"):
        return float(value)
    if unit == "s":
        moved = float(extra.get("bytes_moved", 2 * size))  # a write and a read
        return moved / 1e6 / value
    return None


def _size_label(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} B"


def staging_plot(json_file: Path, png: Path) -> bool:
    """MB/s vs value size, one line per method (ours and each same-run reference)."""
    data = json.loads(Path(json_file).read_text())
    lines: dict[str, dict[float, float]] = defaultdict(dict)
    for r in data.get("results", []):
        size = _size_of(r)
        if size is None:
            continue
        case = r.get("case", "")
        if "overhead" in case or "many-to-one" in case:
            continue  # not a size sweep
        method = _method_of(r)
        # "X vs Y" rows re-measure X only to compare with Y: plot Y's line from them.
        if " vs " not in case and (ours := _rate(r, size, "ours")) is not None:
            lines[method][size] = ours
        ref_name = r.get("reference_name")
        if ref_name and (ref := _rate(r, size, "reference")) is not None:
            lines[ref_name].setdefault(size, ref)
    lines = {k: v for k, v in lines.items() if len(v) >= 2}
    if not lines:
        return False
    from simai.bench._lazy import require

    Figure = require("matplotlib.figure", "plot", "the staging plot").Figure
    from matplotlib import colormaps

    fig = Figure(figsize=(9, 5.5), dpi=110)
    ax = fig.add_subplot()
    references = {r.get("reference_name") for r in data.get("results", [])}
    palette = colormaps["tab20"]
    # ours first (solid), references after (dashed), each its own colour
    order = sorted(lines, key=lambda n: (n in references, n))
    for i, name in enumerate(order):
        pts = sorted(lines[name].items())
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "--" if name in references else "-",
            color=palette(i % palette.N),
            marker="o",
            markersize=3,
            label=f"{name} (reference)" if name in references else name,
        )
    sizes = sorted({x for pts in lines.values() for x in pts})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [_size_label(x) for x in sizes])
    ax.set_yscale("log")
    ax.set_xlabel("value size (bytes)")
    ax.set_ylabel("MB/s (write + read)")
    machine = data.get("machine", {})
    ax.set_title(
        f"{data.get('title', 'staging')} - {machine.get('cpus', '?')} CPUs, {machine.get('platform', '')[:40]}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return True
