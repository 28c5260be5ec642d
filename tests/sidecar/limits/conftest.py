"""Fixtures of the limit tests: a real ``redis-server`` (Debian package) and admissions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from aiguillage.devtools.redis_server import RedisServer


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for the tests that only read and write keys (flushed per test)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    client = redis.Redis.from_url(shared_redis.url, socket_timeout=5)
    client.flushall()
    client.close()
    return shared_redis.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and start again."""
    with RedisServer() as server:
        yield server
