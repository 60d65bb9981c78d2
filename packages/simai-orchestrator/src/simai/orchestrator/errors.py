"""Exceptions a component's Future can carry; each names the component (and the root cause)."""

from __future__ import annotations

__all__ = [
    "ComponentError",
    "ComponentTimeout",
    "DependencyFailed",
    "OrchestratorStopped",
    "RemoteLaunchError",
]


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


class RemoteLaunchError(ComponentError):
    """An ``mpiexec`` launch exited non-zero; the message ends with the tail of stderr."""

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


class OrchestratorStopped(ComponentError):
    """The orchestrator stopped before the component could run."""
