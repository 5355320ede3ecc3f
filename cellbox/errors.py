"""Exceptions that carry a message for the user: what went wrong and what to do."""

from __future__ import annotations


class CellboxError(Exception):
    """Base class. ``str(err)`` is the message shown to the user."""

    exit_code = 2


class UsageError(CellboxError):
    """The caller asked for something malformed (bad option, bad value, bad rule)."""


class ConfigError(CellboxError):
    """The configuration file is missing a value or has a wrong one."""


class BoxStateError(CellboxError):
    """The box is not in the state the operation needs (e.g. not initialised)."""


class BoxBusyError(CellboxError):
    """Another process holds the box's lock. ``waited``: whether the caller already waited;
    each front end tells how to wait in its own terms (``with_hint``)."""

    def __init__(self, message: str, waited: bool = False) -> None:
        super().__init__(message)
        self.waited = waited

    def with_hint(self, wait: str, longer: str) -> BoxBusyError:
        """This error with what to do: ``wait`` how to wait, ``longer`` how to wait longer."""
        todo = longer if self.waited else wait
        return BoxBusyError(f"{self}; {todo}, or see what holds it with 'cellbox boxes'",
                            self.waited)


class SandboxSetupError(CellboxError):
    """A requested isolation or limit could not be applied: the run fails closed."""
