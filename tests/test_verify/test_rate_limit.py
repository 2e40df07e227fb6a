"""Rate limits in memory (one process) and in Redis (shared by workers)."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest
import redis

from verify.ratelimit import (
    MemoryRateLimiter,
    RateLimitUnavailable,
    RedisRateLimiter,
    client_key,
)

REDIS_URL = os.environ.get("CERTSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def _hits(
    limiter: MemoryRateLimiter | RedisRateLimiter, address: str, count: int
) -> list[bool]:
    return [await limiter.hit(address) is None for _ in range(count)]


def test_memory_limit_is_per_client() -> None:
    limiter = MemoryRateLimiter(per_minute=5)
    assert asyncio.run(_hits(limiter, "198.51.100.7", 6)) == [True] * 5 + [False]
    assert asyncio.run(_hits(limiter, "198.51.100.8", 1)) == [True]


def test_redis_limit_is_shared_by_workers_and_stores_no_address() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} unreachable ({exc}); start it (see .ci/run)")
    address = f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}"

    async def two_workers() -> list[bool]:
        worker_a = RedisRateLimiter(REDIS_URL, per_minute=4)
        worker_b = RedisRateLimiter(REDIS_URL, per_minute=4)
        return (
            await _hits(worker_a, address, 2)
            + await _hits(worker_b, address, 2)
            + await _hits(worker_a, address, 1)
        )

    assert asyncio.run(two_workers()) == [True] * 4 + [False]
    keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).keys("certsvc:rl:*")]
    assert any(client_key(address) in k for k in keys)
    assert not any(address in k for k in keys)


def test_redis_down_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", per_minute=1)
    assert asyncio.run(_hits(limiter, "192.0.2.1", 3)) == [True] * 3


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    """One subscriber holds a whole /64: counting each address would give them 2^64 budgets."""
    limiter = MemoryRateLimiter(per_minute=3)
    same_64 = ["2001:db8:1:2::1", "2001:db8:1:2::abcd", "2001:db8:1:2:ffff:1:2:3"]
    assert asyncio.run(_hits(limiter, same_64[0], 1)) == [True]
    assert asyncio.run(_hits(limiter, same_64[1], 1)) == [True]
    assert asyncio.run(_hits(limiter, same_64[2], 2)) == [True, False]
    assert asyncio.run(_hits(limiter, "2001:db8:1:3::1", 1)) == [True]
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7")
    assert client_key("198.51.100.7") != client_key("198.51.100.8")


def test_redis_down_refuses_when_the_limit_fails_closed() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", per_minute=100, fail_open=False)
    with pytest.raises(RateLimitUnavailable, match="try again"):
        asyncio.run(limiter.hit("192.0.2.1"))
