"""What `simai servers`, `simai executors` and `simai trace` show, read from the layers themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fields(model: type) -> list[dict[str, str]]:
    out = []
    for name, f in getattr(model, "model_fields", {}).items():
        if name in ("type", "name"):
            continue
        ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        if f.is_required():
            default = "(required)"
        elif f.default_factory is not None:
            default = repr(f.default_factory())
        else:
            default = repr(f.default)
        out.append(
            {"name": name, "type": ann, "default": default, "description": f.description or ""}
        )
    return out


def server_types() -> dict[str, list[dict[str, str]]]:
    """server type -> its config model's options (from the datastore's registry)."""
    from simai.datastore import server_registry

    out: dict[str, list[dict[str, str]]] = {}
    for name in server_registry.list_types():
        try:
            out[name] = _fields(server_registry.get_config_class(name))
        except Exception as exc:  # a plugin that fails to load is listed, not fatal
            out[name] = [
                {"name": "(unavailable)", "type": "", "default": "", "description": str(exc)}
            ]
    return out


def executor_types() -> dict[str, list[dict[str, str]]]:
    from simai.orchestrator import executor_config_class, list_executors

    out: dict[str, list[dict[str, str]]] = {}
    for name in list_executors():
        try:
            out[name] = _fields(executor_config_class(name))
        except Exception as exc:
            out[name] = [
                {"name": "(unavailable)", "type": "", "default": "", "description": str(exc)}
            ]
    return out


class TraceTools:
    """A trace file (Chrome JSON, spans .jsonl or a run directory) loaded once."""

    def __init__(self, path: Path):
        from simai.profiling import load_spans, summarize

        try:
            self.spans = load_spans(path)
        except (OSError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read spans: {exc}") from None
        if not self.spans:
            raise ValueError("holds no spans")
        self.path = path
        self.summary = summarize(self.spans)

    def table(self) -> Any:
        from simai.bench._display import summary_table

        return summary_table(self.summary, limit=40)

    def write_summary(self, out: Path) -> None:
        from simai.profiling import write_summary_csv, write_summary_json

        if out.suffix.lower() == ".csv":
            write_summary_csv(self.summary, out)
        else:
            write_summary_json(self.summary, out)

    def plot(self, png: Path) -> None:
        from simai.profiling import plot_timeline

        plot_timeline(self.spans, png, title=self.path.name)
