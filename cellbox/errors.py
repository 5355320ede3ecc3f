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
    """Another process holds the box's lock."""


class SandboxSetupError(CellboxError):
    """A requested isolation or limit could not be applied: the run fails closed."""
