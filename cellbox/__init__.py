"""cellbox: a Linux sandbox for untrusted programs.

The library's names are imported lazily, so the command line starts without them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own costs every command ~14 ms of imports

__version__ = "0.1.0"
__all__ = ["Box", "Limits", "Pool", "RunResult", "Status", "run_many"]

if TYPE_CHECKING:
    from cellbox.api import Box, run_many
    from cellbox.limits import Limits
    from cellbox.pool import Pool
    from cellbox.result import RunResult, Status


def __getattr__(name: str) -> object:
    if name in ("Box", "run_many"):
        from cellbox import api

        return getattr(api, name)
    if name == "Pool":
        from cellbox.pool import Pool

        return Pool
    if name == "Limits":
        from cellbox.limits import Limits

        return Limits
    if name in ("RunResult", "Status"):
        from cellbox import result

        return getattr(result, name)
    raise AttributeError(f"module 'cellbox' has no attribute {name!r}")
