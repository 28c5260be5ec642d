"""The redis-server test fixture: starts on a free port, can be stopped and restarted."""

from __future__ import annotations

import pytest
import redis

from aiguillage.devtools.redis_server import RedisServer


def test_start_stop_and_start_again_on_the_same_port() -> None:
    with RedisServer(password="pw") as server:
        client = redis.Redis.from_url(server.url, password="pw", socket_timeout=5)
        assert client.ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url, socket_timeout=5).ping()
        server.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert client.ping()
        client.close()
