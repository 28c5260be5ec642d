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


def test_a_persistent_server_keeps_its_data_through_a_kill() -> None:
    with RedisServer(persist=True) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        client.set("spent", 42)
        server.kill()
        server.start()
        assert client.get("spent") == b"42"
        client.close()


def test_a_paused_server_does_not_answer_until_resumed() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=0.3)
        assert client.ping()
        server.pause()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.resume()
        assert client.ping()
        client.close()
