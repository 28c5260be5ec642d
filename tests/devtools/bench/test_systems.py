"""Starting the systems: the upstream's stream shape changed for a block and put back, and
the Portkey peer forwarding plain and streamed answers from the simulated upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiguillage.devtools.bench import systems, tools
from aiguillage.devtools.bench.procs import Procs


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Procs, str]]:
    with Procs(tmp_path / "logs") as procs:
        _, url = systems.start_upstream(procs, cpus=None, chunks=4, interval=0.005)
        yield procs, url


def _shape(url: str) -> tuple[int, float]:
    status, body = systems.http_request(f"{url}/_sim/config")
    assert status == 200
    config = json.loads(body)
    return config["chunks"], config["chunk_interval"]


def test_the_stream_shape_holds_inside_the_block_only(upstream: tuple[Procs, str]) -> None:
    _, url = upstream
    assert _shape(url) == (4, 0.005)
    with systems.stream_shape(url, chunks=64, interval=0.0):
        assert _shape(url) == (64, 0.0)
    assert _shape(url) == (4, 0.005)
    seen: list[tuple[int, float]] = []

    def failed_measurement() -> None:
        with systems.stream_shape(url, chunks=2, interval=0.02):
            seen.append(_shape(url))
            raise RuntimeError("a failed measurement")

    with pytest.raises(RuntimeError):
        failed_measurement()
    assert seen == [(2, 0.02)]
    assert _shape(url) == (4, 0.005)


def test_portkey_clients_name_the_upstream_and_carry_its_key() -> None:
    headers = systems.portkey_headers("http://127.0.0.1:1234")
    assert headers == [
        "x-portkey-provider: openai",
        "x-portkey-custom-host: http://127.0.0.1:1234/v1",
        f"Authorization: Bearer {systems.UPSTREAM_KEY}",
    ]


def _installed_portkey() -> tools.NodePackage:
    """The gateway if a benchmark run installed it already (tests do not download it)."""
    for path in sorted(tools.cache_dir().glob("portkey-*")):
        if (path / ".bench-stamp.json").exists():
            try:
                return tools.ensure_portkey()
            except RuntimeError as exc:
                pytest.skip(f"Portkey not usable here: {exc}")
    pytest.skip("Portkey is not installed (make bench-quick installs it)")


def test_portkey_relays_answers_and_streams_of_the_upstream(
    upstream: tuple[Procs, str],
) -> None:
    package = _installed_portkey()
    procs, url = upstream
    portkey = systems.start_portkey(procs, package, url, cpus=None)
    headers = dict(h.split(": ", 1) for h in portkey.headers)
    status, body = systems.http_request(portkey.chat_url, systems.request_body(False), headers)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"]
    # streams work only with @hono/node-server pinned below 1.14.2 (bench/peers/portkey/)
    status, body = systems.http_request(portkey.chat_url, systems.request_body(True), headers)
    assert status == 200, body
    assert body.rstrip().endswith(b"data: [DONE]")
    assert portkey.idle is not None
    assert portkey.idle.rss_mb > 0
