"""Starting and stopping the sidecar (``main.py``): connection limits against idle and slow
clients, and, on a real process, SIGTERM (drain, then exit 0) and SIGHUP (reopen the audit)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import SidecarConfig
from aiguillage.sidecar.main import ServeOptions, Sidecar, parse_listen
from tests.sidecar.conftest import (
    CREDENTIALS,
    MESSAGES,
    PATIENT,
    RunningSidecar,
    StartSidecar,
    closed_port,
    eu_target,
    route,
    two_provider_config,
    wait_for,
    write_files,
)
from tests.sidecar.test_shutdown import Client


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:4000", ("127.0.0.1", 4000)),
        (":4000", ("127.0.0.1", 4000)),  # loopback unless told otherwise
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("[::1]:4000", ("::1", 4000)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


def test_start_binds_loopback_and_stop_releases_the_port(lt: LoopThread, tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path / "config", tmp_path / "credentials", str(tmp_path / "a.jsonl"))
    url = lt.run(sidecar.start("127.0.0.1:0"))
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    lt.run(sidecar.stop())

    again = Sidecar(tmp_path / "config", tmp_path / "credentials", str(tmp_path / "b.jsonl"))
    assert lt.run(again.start(f"127.0.0.1:{port}")) == url
    lt.run(again.stop())


# -- connection limits: idle and slow clients ---------------------------------------------------


@pytest.fixture
def strict(start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator) -> RunningSidecar:
    serving = ServeOptions(idle_timeout=1.0, body_timeout=1.0)
    return start_sidecar(two_provider_config(eu, us, route("chat", eu_target())), serving=serving)


def connect(sc: RunningSidecar) -> socket.socket:
    host, port = sc.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


class Reader:
    """What the server sent on a raw connection, read in the background of the polls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.closed = False
        sock.settimeout(0.2)

    def poll(self) -> bool:
        """Read what arrived; True once the server closed the connection."""
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
            self.closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            self.closed = True
        return self.closed


def test_an_idle_connection_is_closed(strict: RunningSidecar) -> None:
    with connect(strict) as sock:
        reader = Reader(sock)
        wait_for(reader.poll, timeout=15, what="the server to close the connection")
    assert reader.received == b""


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(strict: RunningSidecar) -> None:
    body = orjson.dumps({"model": "chat", "messages": MESSAGES})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with connect(strict) as sock:
        sock.sendall(request)
        reader = Reader(sock)
        wait_for(reader.poll, timeout=15, what="the answer, then the close")
    assert reader.received.startswith(b"HTTP/1.1 200")


def test_headers_sent_one_byte_at_a_time_are_cut_off(strict: RunningSidecar) -> None:
    # Slowloris: a request line and headers trickling in, never complete.
    trickle = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 500
    sent = 0
    with connect(strict) as sock:
        sock.settimeout(0.2)
        with pytest.raises((ConnectionError, EOFError)):  # noqa: PT012
            for byte in trickle:
                sock.sendall(bytes([byte]))
                sent += 1
                try:
                    if sock.recv(1024) == b"":
                        raise EOFError
                except TimeoutError:
                    pass
    assert sent < len(trickle)  # cut off long before the headers could complete


def test_a_body_sent_too_slowly_gets_a_408(strict: RunningSidecar, eu: OpenAISimulator) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    with connect(strict) as sock:
        sock.sendall(head)
        reader = Reader(sock)
        # The 408 comes once the body timeout passes; the connection closes after it (what
        # the client still sends is read and dropped for LINGER_SECONDS, so it gets the 408).
        wait_for(reader.poll, timeout=20, what="the 408, then the close")
    assert reader.received.startswith(b"HTTP/1.1 408")
    assert b"body_timeout" in reader.received
    assert eu.requests == []


# -- signals, on a real process -------------------------------------------------------------------


class Process:
    """``aiguillage sidecar`` in a child process, stopped (by its pid) when the test ends."""

    def __init__(self, tmp_path: Path, config: SidecarConfig, *args: str) -> None:
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.audit = tmp_path / "audit.jsonl"
        write_files(tmp_path / "config", tmp_path / "credentials", config, CREDENTIALS)
        env = {**os.environ, "AIGUILLAGE_AUDIT_LOG": str(self.audit)}
        self.log = (tmp_path / "sidecar.log").open("wb")
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from aiguillage.cli import main; main()",
                "sidecar",
                "--config-dir",
                str(tmp_path / "config"),
                "--listen",
                f"127.0.0.1:{self.port}",
                *args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, timeout=30, what="the sidecar process to be ready")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except OSError:
            return False
        return True

    def audit_records(self) -> list[dict[str, Any]]:
        """The request records (the audit chain's checkpoints left out)."""
        if not self.audit.exists():
            return []
        lines = [orjson.loads(line) for line in self.audit.read_bytes().splitlines()]
        return [line for line in lines if line.get("kind") != "checkpoint"]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self.log.close()


@pytest.fixture
def process(
    tmp_path: Path, eu: OpenAISimulator, us: OpenAISimulator
) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str) -> Process:
        config = two_provider_config(eu, us, route("chat", eu_target(), timeouts=PATIENT))
        started.append(Process(tmp_path, config, *args))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def test_sigterm_drains_then_ends_open_streams_and_exits_0(
    process: Callable[..., Process], eu: OpenAISimulator, lt: LoopThread
) -> None:
    sc = process("--drain-seconds", "3")
    # A stream that never ends by itself, then a request that takes a second to answer.
    eu.set_faults(
        [
            {"kind": "stall_mid_stream", "after_chunks": 1},
            {"kind": "slow_first_byte", "delay": 1.0},
        ]
    )
    endless = Client(
        lt,
        sc.url + "/v1/chat/completions",
        {"model": "chat", "messages": MESSAGES, "stream": True},
        "endless",
    )
    wait_for(lambda: b"Hello" in endless.received, what="the stream's first chunk")
    quick = Client(
        lt, sc.url + "/v1/chat/completions", {"model": "chat", "messages": MESSAGES}, "quick"
    )
    wait_for(lambda: len(eu.requests) == 2, what="the second request to reach the provider")

    sc.popen.send_signal(signal.SIGTERM)

    wait_for(lambda: not sc.accepts(), timeout=10, what="new connections to be refused")
    assert sc.popen.poll() is None  # still draining
    assert b"Hello from mistral-eu" in quick.result()  # finished within the drain
    assert quick.status == 200
    # The stream never ends by itself: exiting at all is the drain's bound at work.
    assert sc.popen.wait(30) == 0

    last = [f for f in endless.result().split(b"\n\n") if f][-1]
    assert orjson.loads(last[6:])["error"]["code"] == "shutdown"
    outcomes = {r["requestId"]: (r["outcome"], r["status"]) for r in sc.audit_records()}
    assert outcomes == {"endless": ("shutdown", 200), "quick": ("ok", 200)}


def test_sighup_reopens_the_audit_file_and_keeps_serving(
    process: Callable[..., Process], tmp_path: Path
) -> None:
    sc = process()
    body = orjson.dumps({"model": "chat", "messages": MESSAGES})

    def post(rid: str) -> int:
        request = urllib.request.Request(
            sc.url + "/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json", "x-request-id": rid},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)

    assert post("before") == 200
    wait_for(sc.audit_records, what="the first record")
    sc.audit.rename(tmp_path / "audit.jsonl.1")  # logrotate, then its postrotate: kill -HUP

    sc.popen.send_signal(signal.SIGHUP)

    wait_for(sc.audit.exists, what="the audit file to be reopened")
    assert sc.popen.poll() is None
    assert post("after") == 200
    wait_for(sc.audit_records, what="the record in the new file")
    assert [r["requestId"] for r in sc.audit_records()] == ["after"]
    rotated = (tmp_path / "audit.jsonl.1").read_bytes()
    assert [
        line["requestId"]
        for line in map(orjson.loads, rotated.splitlines())
        if line.get("kind") != "checkpoint"
    ] == ["before"]


def test_settling_the_collector_freezes_start_up_objects_and_collects_less_often() -> None:
    import gc

    from aiguillage.sidecar.main import GC_YOUNG_THRESHOLD, settle_garbage_collector

    threshold = gc.get_threshold()
    try:
        settle_garbage_collector()
        # what start-up made is out of the collector's sight, and young collections are rarer
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("on", True), ("OFF", False)])
def test_metrics_switch_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("AIGUILLAGE_METRICS", raising=False)
    else:
        monkeypatch.setenv("AIGUILLAGE_METRICS", value)
    assert ServeOptions.from_environment().metrics is expected


def test_a_metrics_switch_neither_on_nor_off_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGUILLAGE_METRICS", "no")
    with pytest.raises(SystemExit, match="AIGUILLAGE_METRICS='no': expected on or off"):
        ServeOptions.from_environment()


# -- in a pod: health on the pod IP, a namespace with no routes yet ------------------------------


def _get(lt: LoopThread, url: str) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status, await resp.text()

    return lt.run(go())


def test_health_listener_serves_only_health_readiness_and_metrics(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(two_provider_config(eu, us, route("chat", eu_target())))
    health = sc.lt.run(sc.sidecar.start_health("127.0.0.1:0"))

    assert _get(sc.lt, f"{health}/healthz") == (200, "ok\n")
    status, text = _get(sc.lt, f"{health}/readyz")
    assert (status, text) == (200, f"ok {sc.serving_hash()}\n")
    # Prometheus scrapes the pod IP (the chart's PodMonitor); the same metrics as on loopback.
    status, text = _get(sc.lt, f"{health}/metrics")
    assert status == 200
    assert "aiguillage_config_reloads_total" in text
    # The API stays on loopback only: nothing else is routed here.
    for path in ("/v1/models", "/v1/chat/completions"):
        assert _get(sc.lt, f"{health}{path}")[0] == 404
    assert sc.raw("GET", "/v1/models").status == 200


def test_without_config_file_ready_without_config_serves_no_routes(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(None, ready_without_config=True)

    assert sc.raw("GET", "/readyz").status == 200
    with pytest.raises(openai.NotFoundError) as caught:
        sc.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.code == "route_not_found"

    # The operator writes the namespace's first config later: it is picked up.
    sc.write_config(two_provider_config(eu, us, route("chat", eu_target())), CREDENTIALS)
    wait_for(lambda: sc.raw("GET", "/v1/models").json()["data"], what="the routes")
    answer = sc.client().chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert answer.headers["x-aiguillage-provider"] == "mistral-eu"


def test_an_invalid_config_is_not_ready_even_when_ready_without_config(
    start_sidecar: StartSidecar,
) -> None:
    sc = start_sidecar(b"{not json", ready_without_config=True)

    assert sc.raw("GET", "/readyz").status == 503
