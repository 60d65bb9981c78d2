"""The bench layer's use of simai.profiling: one run per launch, rooted at the `workflow` span."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("simai.bench")


def configure_from_env() -> None:
    """Join the run's trace in this process/rank (a cheap no-op outside a profiled run)."""
    from simai.profiling import configure_from_env as _configure

    _configure()


class _ProfiledRun:
    """``with`` block = the run's lifetime; its root span is named ``workflow``.

    Without a run directory nothing is recorded, but the ``workflow`` span is still
    opened through opentelemetry-api, so a user's own SDK set-up sees it.
    """

    def __init__(self, run_dir: Path | None, name: str, executor: str):
        self.run_dir = run_dir
        self.attributes = {"simai.workflow": name, "simai.executor": executor}
        self._run: Any = None
        self._span_cm: Any = None

    def __enter__(self) -> _ProfiledRun:
        if self.run_dir is not None:
            from simai.profiling import start_run

            self._run = start_run(self.run_dir, service_name="simai", root_span_name="workflow")
            for k, v in self.attributes.items():
                self._run.root_span.set_attribute(k, v)
        else:
            from opentelemetry import trace

            self._span_cm = trace.get_tracer("simai.bench").start_as_current_span(
                "workflow", attributes=self.attributes
            )
            self._span_cm.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._run is not None:
            self._run.end(exc)
        if self._span_cm is not None:
            self._span_cm.__exit__(exc_type, exc, tb)

    def export(self) -> dict[str, Path]:
        """Write trace.json, summary.json/csv and timeline.png into the run directory."""
        if self.run_dir is None:
            return {}
        import simai.profiling as prof

        export = getattr(prof, "export_run", None)
        if export is None:  # an older simai-profiling: keep the raw spans
            return {}
        out = export(self.run_dir)
        if isinstance(out, dict):
            return {str(k): Path(v) for k, v in out.items() if v}
        return {
            p.stem if p.suffix != ".csv" else "summary_csv": p
            for p in (Path(x) for x in (out or []))
        }


def open_run(run_dir: Path | None, name: str, executor: str) -> _ProfiledRun:
    return _ProfiledRun(Path(run_dir) if run_dir else None, name, executor)
