"""Per-client rate limits for the public side: in memory for one process, in Redis when
several workers must share the count. Clients are keyed by a hash of their address; the
address itself is stored nowhere."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Protocol

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


def client_key(address: str) -> str:
    return hashlib.sha256(b"certsvc-rate-limit\n" + address.encode()).hexdigest()[:32]


class RateLimiter(Protocol):
    async def hit(self, address: str) -> float | None:
        """Count one request; None when allowed, else seconds until the client may retry."""


class MemoryRateLimiter:
    def __init__(self, per_minute: int) -> None:
        self._limit = per_minute
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    async def hit(self, address: str) -> float | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = client_key(address)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
            seen_window, count = self._counts.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[key] = (window, count)
        if count > self._limit:
            return (window + 1) * WINDOW_SECONDS - now
        return None


class RedisRateLimiter:
    """A fixed one-minute window per client in Redis; if Redis is unreachable the request is
    let through (verification stays available) and the outage is logged."""

    def __init__(self, url: str, per_minute: int, scope: str = "rl") -> None:
        import redis
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._limit = per_minute
        self._scope = scope
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    async def hit(self, address: str) -> float | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"certsvc:{self._scope}:{client_key(address)}:{window}"
        try:
            async with self._redis.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, 2 * WINDOW_SECONDS)
                count = int((await pipe.execute())[0])
        except self._errors:
            logger.warning("rate limiter: Redis unreachable, request let through")
            return None
        if count > self._limit:
            return (window + 1) * WINDOW_SECONDS - now
        return None


def make_rate_limiter(per_minute: int, redis_url: str | None, scope: str = "rl") -> RateLimiter:
    """A limiter whose Redis keys live under `scope`, so several limits never share counts."""
    if redis_url:
        return RedisRateLimiter(redis_url, per_minute, scope)
    return MemoryRateLimiter(per_minute)
