"""Close-match suggestions for unknown names (kernels, server types, executors)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    hints = close_matches(name, known)
    msg = f"unknown {what} {name!r}"
    if hints:
        msg += f"; did you mean {' or '.join(repr(h) for h in hints)}?"
    if known:
        msg += f" (known: {', '.join(known)})"
    return msg
