"""Finding kernels by name: the ``simai.kernels`` entry-point group, read once and cached.

Built-in kernels are registered by simai-kernels' own ``pyproject.toml`` exactly as a
third-party package would register its kernels, so both are looked up the same way.
``register_kernel`` adds a kernel at run time (notebooks, tests, one-off scripts).
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from simai.kernels.protocols import Kernel

__all__ = [
    "ENTRY_POINT_GROUP",
    "close_matches",
    "did_you_mean",
    "get_kernel",
    "list_kernels",
    "normalize_name",
    "refresh",
    "register_kernel",
    "unregister_kernel",
]

ENTRY_POINT_GROUP = "simai.kernels"
_BUILTIN_DIST = "simai-kernels"

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_runtime: dict[str, tuple[str, Callable[[], Any]]] = {}


def normalize_name(name: str) -> str:
    """The look-up key of a name: case, surrounding blanks and ``_`` vs ``-`` do not
    matter (the rule the datastore applies to its backend names)."""
    return name.strip().lower().replace("_", "-")


def close_matches(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.5) -> list[str]:
    """The known names close to ``name``, compared by :func:`normalize_name`, as spelled in ``known``."""
    by_key = {normalize_name(k): k for k in known}
    hits = difflib.get_close_matches(normalize_name(name), list(by_key), n=n, cutoff=cutoff)
    return [by_key[h] for h in hits]


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the known names close to ``name``, or ``""``."""
    close = close_matches(name, known, n, cutoff)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


@functools.cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    table: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = normalize_name(ep.name)
        old = table.get(key)
        if old is not None and old.value != ep.value:
            # A built-in name cannot be hijacked by installing another package.
            keep = old if _dist(old) == _BUILTIN_DIST else ep
            warnings.warn(
                f"kernel {ep.name!r} is registered twice ({old.value} from {_dist(old)}, "
                f"{ep.value} from {_dist(ep)}); using {keep.value}",
                RuntimeWarning,
                stacklevel=3,
            )
            table[key] = keep
            continue
        table[key] = ep
    return table


def _dist(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


@functools.cache
def _load(key: str) -> Callable[[], Any]:
    ep = _entry_points()[key]
    try:
        return ep.load()
    except Exception as exc:
        raise ImportError(
            f"kernel {ep.name!r} could not be loaded from {ep.value} ({_dist(ep)}): {exc}"
        ) from exc


def refresh() -> None:
    """Forget the cached entry points (after installing a package in a running process)."""
    _entry_points.cache_clear()
    _load.cache_clear()


def _factory(key: str) -> Callable[[], Any] | None:
    with _lock:
        if key in _runtime:
            return _runtime[key][1]
    if key in _entry_points():
        return _load(key)
    return None


def _known_names() -> list[str]:
    with _lock:
        runtime = [name for name, _ in _runtime.values()]
    return sorted({*runtime, *(ep.name for ep in _entry_points().values())}, key=str.lower)


def get_kernel(name: str) -> Kernel:
    """A new kernel object for ``name`` (case-insensitive).

    Unknown names raise ``ValueError`` listing close matches. The kernel's inputs are
    cached by the layer, not by the object, so creating kernels is cheap.
    """
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a str, not {type(name).__name__}")
    factory = _factory(normalize_name(name))
    if factory is None:
        known = _known_names()
        raise ValueError(
            f"unknown kernel {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"
        )
    kernel = factory()
    missing = [
        attr for attr in ("name", "family") if not isinstance(getattr(kernel, attr, None), str)
    ]
    if missing or not callable(kernel):
        raise TypeError(
            f"kernel {name!r} does not follow the simai.kernels.Kernel protocol "
            f"(missing {', '.join(missing) or '__call__'})"
        )
    return kernel


def list_kernels() -> dict[str, list[str]]:
    """Kernel names grouped by family: ``{"comm": [...], "compute": [...], ...}``, sorted."""
    groups: dict[str, set[str]] = {}
    keys = {normalize_name(n) for n in _known_names()}
    for key in keys:
        try:
            factory = _factory(key)
            family = getattr(factory, "family", None)
            name = getattr(factory, "name", None)
            if not isinstance(family, str) or not isinstance(name, str):
                kernel = factory()  # a factory function: ask the object it makes
                family, name = kernel.family, kernel.name
        except Exception as exc:
            warnings.warn(f"skipping kernel {key!r}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        groups.setdefault(family, set()).add(name)
    return {family: sorted(names, key=str.lower) for family, names in sorted(groups.items())}


def register_kernel(
    kernel: F | None = None, *, name: str | None = None, replace: bool = False
) -> Any:
    """Register a kernel class (or zero-argument factory) at run time; usable as a decorator.

    ``name`` defaults to the class's ``name`` attribute. A name that is already taken
    (case-insensitively) raises ``ValueError`` unless ``replace=True``. Packages should
    prefer an entry point in the ``simai.kernels`` group, which needs no import to be found.
    """

    def decorate(obj: F) -> F:
        canonical = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
        if not isinstance(canonical, str) or not canonical:
            raise ValueError("register_kernel needs a name (pass name=...)")
        key = normalize_name(canonical)
        with _lock:
            taken = key in _runtime
        if not replace and (taken or key in _entry_points()):
            raise ValueError(f"kernel name {canonical!r} is already registered (pass replace=True)")
        with _lock:
            _runtime[key] = (canonical, obj)
        return obj

    return decorate(kernel) if kernel is not None else decorate


def unregister_kernel(name: str) -> None:
    """Remove a kernel added with ``register_kernel`` (entry points are not affected)."""
    with _lock:
        if _runtime.pop(normalize_name(name), None) is None:
            raise ValueError(f"no kernel {name!r} was registered with register_kernel")
