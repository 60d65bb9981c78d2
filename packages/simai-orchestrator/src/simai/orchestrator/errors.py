"""Exceptions a component's Future can carry; each names the component (and the root cause)."""

from __future__ import annotations

__all__ = [
    "CommandFailed",
    "ComponentError",
    "ComponentTimeout",
    "DependencyFailed",
    "MissingMainGuardError",
    "OrchestratorStopped",
    "RemoteError",
    "RemoteLaunchError",
]


class MissingMainGuardError(RuntimeError):
    """A process pool was started from a main script's top level, outside its
    ``if __name__ == "__main__":`` guard (its workers would re-run the script)."""


class ComponentError(Exception):
    """Base class: something went wrong with component ``component``."""

    def __init__(self, message: str, component: str | None = None):
        super().__init__(message)
        self.component = component

    def __reduce__(self):
        return (self.__class__, (str(self), self.component))


class DependencyFailed(ComponentError):
    """The component never ran because a dependency failed or was cancelled."""

    def __init__(
        self,
        message: str,
        component: str | None = None,
        dependency: str | None = None,
        root_cause: str | None = None,
    ):
        super().__init__(message, component)
        self.dependency = dependency
        self.root_cause = root_cause

    def __reduce__(self):
        return (self.__class__, (str(self), self.component, self.dependency, self.root_cause))


class ComponentTimeout(ComponentError, TimeoutError):
    """The component ran longer than its ``timeout``."""


class CommandFailed(ComponentError):
    """A local command-string component exited non-zero; the message ends with stderr's tail."""

    def __init__(
        self,
        message: str,
        component: str | None = None,
        returncode: int | None = None,
        stderr_tail: str = "",
    ):
        super().__init__(message, component)
        self.returncode = returncode
        self.stderr_tail = stderr_tail

    def __reduce__(self):
        return (self.__class__, (str(self), self.component, self.returncode, self.stderr_tail))


class RemoteLaunchError(CommandFailed):
    """A ``type="remote"`` launch through ``mpiexec`` failed (exited non-zero, no mpiexec,
    a rank without a result); the message ends with the tail of stderr."""


class OrchestratorStopped(ComponentError):
    """The orchestrator stopped (or was interrupted) before the component could finish."""


class RemoteError(ComponentError):
    """An exception from a worker process that could not be pickled back: its type name,
    message and traceback text are kept."""

    def __init__(self, message: str, type_name: str = "", traceback_text: str = ""):
        super().__init__(message)
        self.type_name = type_name
        self.traceback_text = traceback_text

    def __reduce__(self):
        return (self.__class__, (str(self), self.type_name, self.traceback_text))
