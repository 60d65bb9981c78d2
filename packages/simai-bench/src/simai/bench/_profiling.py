"""The bench layer's use of simai.profiling: one run per launch, rooted at the `workflow` span."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ProfiledRun:
    """``with`` block = the run's lifetime; its root span is named ``workflow``.

    Without a run directory nothing is recorded, but the ``workflow`` span is still
    opened through opentelemetry-api, so a user's own SDK set-up sees it.
    """

    def __init__(self, run_dir: str | Path | None, name: str, executor: str):
        self.run_dir = Path(run_dir) if run_dir else None
        self.attributes = {"simai.workflow": name, "simai.executor": executor}
        self._run: Any = None
        self._span_cm: Any = None

    def __enter__(self) -> ProfiledRun:
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
        from simai.profiling import export_run

        return export_run(self.run_dir)
