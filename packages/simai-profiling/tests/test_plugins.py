"""Profiling plugins: the entry-point registry, the built-ins, and a third-party
distribution that joins a run without any code change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from simai.profiling.protocols import AnalysisPlugin, ProfilingPlugin, SamplingPlugin
from simai.profiling.registry import get_plugin, list_plugins, resolve_plugins


def test_builtins_are_registered_like_any_plugin_and_honour_the_protocols():
    assert set(list_plugins()) >= {"resources", "gpu", "bottlenecks", "trace-import"}
    for name, ability in [
        ("resources", SamplingPlugin),
        ("gpu", SamplingPlugin),
        ("bottlenecks", AnalysisPlugin),
        ("trace-import", AnalysisPlugin),
    ]:
        plugin = get_plugin(name)
        assert isinstance(plugin, ProfilingPlugin) and isinstance(plugin, ability)
        assert plugin.name == name


def test_an_unknown_plugin_suggests_the_close_name(monkeypatch):
    with pytest.raises(
        ValueError, match=r"unknown profiling plugin 'resorces'; did you mean 'resources'"
    ):
        resolve_plugins(["resorces"])
    monkeypatch.setenv("SIMAI_PROFILING_PLUGINS", "bottleneck")
    with pytest.raises(ValueError, match="did you mean 'bottlenecks'"):
        resolve_plugins(None)
    monkeypatch.setenv("SIMAI_PROFILING_PLUGINS", "none")
    assert resolve_plugins(None) == []


def test_plugin_names_ignore_case_and_underscores_like_datastore_backends():
    assert get_plugin("Trace_Import").name == "trace-import"
    assert resolve_plugins(" Resources ,resources,GPU") == ["resources", "gpu"]
    with pytest.raises(TypeError, match="must be a str"):
        get_plugin(3)


def test_a_run_with_an_unknown_plugin_fails_before_it_writes_anything(tmp_path):
    from simai.profiling import start_run

    with pytest.raises(ValueError, match="did you mean 'resources'"):
        start_run(tmp_path / "run", copy_bandwidth=False, plugins=["resorces"])
    assert not (tmp_path / "run").exists()


PLUGIN_MODULE = textwrap.dedent(
    '''
    from simai.profiling import AnalysisResult, Sample


    class AnswerPlugin:
        """Samples a constant and counts the run's spans."""

        name = "answer"

        def start(self, run):
            (run.run_dir / "answer-started").write_text(run.trace_id)

        def stop(self, run):
            (run.run_dir / "answer-stopped").write_text("")

        def sample(self):
            return [Sample("answer.value", 42.0, {"unit_test": "yes"})]

        def analyse(self, run):
            return AnalysisResult("Spans", table=[{"spans": len(run.spans)}])


    class BrokenPlugin:
        name = "broken"

        def start(self, run):
            pass

        def stop(self, run):
            pass

        def sample(self):
            raise RuntimeError("sensor unplugged")
    '''
)

PLUGIN_PYPROJECT = textwrap.dedent(
    """
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "answer-profiling-plugin"
    version = "0.1"

    [project.entry-points."simai.profiling.plugins"]
    answer = "answer_plugin:AnswerPlugin"
    broken = "answer_plugin:BrokenPlugin"

    [tool.setuptools]
    py-modules = ["answer_plugin"]
    """
)

RUN = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from simai.profiling import export_run, start_run

    with start_run(sys.argv[1], copy_bandwidth=False, sample_interval=0.05):
        with trace.get_tracer("app").start_as_current_span("step", attributes={"simai.component": "app"}):
            pass
    export_run(sys.argv[1], plot=False)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_third_party_distribution_joins_a_run_without_code_changes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "answer_plugin.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    target = tmp_path / "site"
    # Installed into a throw-away folder, never into the test environment itself.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert "answer" not in list_plugins()  # this process does not see it

    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])),
    }
    env.pop("SIMAI_PROFILING_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())

    assert {"answer", "broken", "resources"} <= set(summary["profiling"]["plugins"])
    assert (run_dir / "answer-started").read_text() == summary["run"]["trace_ids"][0]
    assert (run_dir / "answer-stopped").exists()
    answer = summary["resources"]["metrics"]["answer.value"]
    assert answer["mean"] == 42.0 and answer["count"] >= 2
    assert summary["analyses"]["answer"] == {
        "title": "Spans",
        "table": [{"spans": 2}],
        "figure": None,
    }
    # The broken plugin costs its own metrics only, and says so.
    assert any(
        "plugin broken: sample failed (RuntimeError: sensor unplugged)" in n
        for n in summary["notes"]
    )
    assert "sensor unplugged" in done.stderr
