"""Close-match suggestions for unknown names: the bench layer's one "did you mean" helper."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names close to ``name`` whatever the case; of names that differ only in
    case (the ``Simulation`` class, the ``simulation`` module) the closer spelling first."""
    by_lower: dict[str, list[str]] = {}
    for k in dict.fromkeys(known):
        by_lower.setdefault(k.lower(), []).append(k)
    hits = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)
    ranked = [
        k
        for h in hits
        for k in sorted(by_lower[h], key=lambda k: -difflib.SequenceMatcher(None, name, k).ratio())
    ]
    return ranked[:n]


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """``"; did you mean 'a' or 'b'?"``, or ``""`` when nothing is close."""
    hints = close_matches(name, known, n)
    return f"; did you mean {' or '.join(repr(h) for h in hints)}?" if hints else ""


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    msg = f"unknown {what} {name!r}{did_you_mean(name, known)}"
    if known:
        msg += f" (known: {', '.join(known)})"
    return msg
