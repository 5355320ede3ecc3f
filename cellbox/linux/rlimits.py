"""Per-process resource limits (setrlimit)."""

from __future__ import annotations

import resource

INFINITY = resource.RLIM_INFINITY

NAMES = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "core": resource.RLIMIT_CORE,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "stack": resource.RLIMIT_STACK,
    "memlock": resource.RLIMIT_MEMLOCK,
}


def apply(limits: dict[str, int | None]) -> None:
    """Set soft = hard = value for each named limit.

    ``None`` means as high as this process may go: its current hard limit (root may lack
    CAP_SYS_RESOURCE, e.g. in a container, and then cannot raise it).
    """
    for name, value in limits.items():
        hard = resource.getrlimit(NAMES[name])[1]
        v = hard if value is None else value
        try:
            resource.setrlimit(NAMES[name], (v, v))
        except (ValueError, OSError) as e:
            raise OSError(f"cannot set the {name} limit to {value}: {e} (the hard limit here "
                          f"is {'unlimited' if hard == INFINITY else hard})") from e
