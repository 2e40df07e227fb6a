"""Per-client rate limits: in memory for one process (so with `--workers N` and no Redis each
worker counts on its own), in Redis when several workers must share the count. Clients are keyed
by a hash of their address — an IPv6 client by its /64, which one subscriber usually holds
whole —; the address itself is stored nowhere."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from typing import Protocol

from common.errors import ServiceFault

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


IPV6_CLIENT_PREFIX = 64


class RateLimitUnavailable(ServiceFault):
    """The shared counter cannot be reached, and this limit fails closed (logins): guessing
    passwords must not become unlimited while Redis is down."""


def client_key(address: str) -> str:
    """The hash a client is counted under: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        network = address
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv6Address):
            network = str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
        else:
            network = str(ip)
    return hashlib.sha256(b"certsvc-rate-limit\n" + network.encode()).hexdigest()[:32]


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
    """A fixed one-minute window per client in Redis. If Redis is unreachable the outage is
    logged and the request is let through (`fail_open`: verification stays available) or
    refused with `RateLimitUnavailable`."""

    def __init__(
        self, url: str, per_minute: int, scope: str = "rl", *, fail_open: bool = True
    ) -> None:
        import redis
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._limit = per_minute
        self._scope = scope
        self._fail_open = fail_open
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
            if not self._fail_open:
                logger.error("rate limiter %s: Redis unreachable, request refused", self._scope)
                raise RateLimitUnavailable(
                    "the rate limiter is unavailable: try again shortly"
                ) from None
            logger.warning("rate limiter %s: Redis unreachable, request let through", self._scope)
            return None
        if count > self._limit:
            return (window + 1) * WINDOW_SECONDS - now
        return None


def make_rate_limiter(
    per_minute: int, redis_url: str | None, scope: str = "rl", *, fail_open: bool = True
) -> RateLimiter:
    """A limiter whose Redis keys live under `scope`, so several limits never share counts."""
    if redis_url:
        return RedisRateLimiter(redis_url, per_minute, scope, fail_open=fail_open)
    return MemoryRateLimiter(per_minute)
