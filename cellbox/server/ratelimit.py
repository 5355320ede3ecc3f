"""Per-client rate limits: ``rate_limit`` requests a minute per token (or client address).

A client's window starts at its first request and lasts ``WINDOW`` seconds. Without a
broker the counts live in this process; with one they are Redis counters, so that every
server on that Redis shares each client's limit.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

from redis.exceptions import RedisError

from cellbox.server.errors import ApiError

WINDOW = 60  # seconds
MAX_CLIENTS = 10_000  # local windows kept before the finished ones are dropped
KEY = "cellbox:rate:{}"  # a digest of the client


class RateLimit(Protocol):
    async def hit(self, client: str) -> int | None:
        """Count a request; None if allowed, else the seconds until the client's window
        ends (Retry-After)."""


class LocalRateLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[float, int]] = {}  # client -> (window start, count)

    async def hit(self, client: str) -> int | None:
        now = time.monotonic()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        self._windows[client] = (start, count + 1)
        if len(self._windows) > MAX_CLIENTS:  # many addresses: forget the finished windows
            self._windows = {c: w for c, w in self._windows.items() if now - w[0] < WINDOW}
        return max(1, int(WINDOW - (now - start))) if count >= self.limit else None


class RedisRateLimit:
    """One counter per client, created with a WINDOW-second expiry by the client's first
    request on any server, INCR'd by every server. Keys hold a digest of the client, never a
    token itself."""

    def __init__(self, limit: int, redis: Any) -> None:  # a redis.asyncio.Redis
        self.limit = limit
        self.redis = redis

    async def hit(self, client: str) -> int | None:
        key = KEY.format(hashlib.sha256(client.encode()).hexdigest()[:32])
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                _, count, ttl = await pipe.set(key, 0, ex=WINDOW, nx=True).incr(key).ttl(
                    key).execute()
        except RedisError as e:  # fail closed: no count, no request
            raise ApiError(503, f"the rate limit's Redis cannot be reached: {e}") from None
        return max(1, int(ttl)) if int(count) > self.limit else None
