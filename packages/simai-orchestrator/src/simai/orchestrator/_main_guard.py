"""Stop a script without an ``if __name__ == "__main__":`` guard before its body runs twice.

Process pools start their workers with ``forkserver`` (forking a process that has
OpenTelemetry and redis threads alive can deadlock). The forkserver, like ``spawn``,
re-imports the main script as ``__mp_main__``; a body that is not under the guard then
runs again there -- servers, writes, a nested launch. SimAI-Bench's pools forked, so its
scripts often have no guard.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from types import FrameType

from simai.orchestrator.errors import MissingMainGuardError

__all__ = ["MissingMainGuardError", "require_main_guard"]


@functools.cache
def _guard_lines(path: str) -> tuple[tuple[int, int], ...]:
    """Line ranges of the top-level ``if __name__ == "__main__":`` blocks of ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return ()
    ranges = []
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            ranges.append((node.lineno, node.end_lineno or node.lineno))
    return tuple(ranges)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, *test.comparators]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return isinstance(test.ops[0], ast.Eq) and len(names) == 1 and len(consts) == 1


def _main_module_frame() -> FrameType | None:
    main = sys.modules.get("__main__")
    if main is None:
        return None
    frame: FrameType | None = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            return frame
        frame = frame.f_back
    return None


def require_main_guard(what: str = "a process pool") -> None:
    """Raise :class:`MissingMainGuardError` when called from a main script's unguarded top level.

    Cheap and silent everywhere else: interactive sessions, ``python -c``, notebooks, a
    call made (directly or through functions) from inside the guard.
    """
    frame = _main_module_frame()
    if frame is None:
        return
    path = frame.f_code.co_filename
    if not path or path.startswith("<"):
        return
    line = frame.f_lineno
    if any(start <= line <= end for start, end in _guard_lines(path)):
        return
    raise MissingMainGuardError(
        f"{what} was started from the top level of {path} (line {line}) without an "
        "'if __name__ == \"__main__\":' guard. Its workers re-import this script, so "
        "everything above would run again in each of them (servers, writes, launches). "
        "Fix: put the script's work in a function and call it under\n"
        '    if __name__ == "__main__":\n'
        "        main()\n"
        "(or use the thread-pool executor, whose workers do not re-import the script)."
    )
