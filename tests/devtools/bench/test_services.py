"""The services feature variants talk to: a trace collector that counts the spans it gets
from the real OTLP exporter, and a throw-away redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiguillage.devtools.bench import services
from aiguillage.devtools.bench.procs import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    with Procs(tmp_path / "logs") as running:
        yield running


def test_the_collector_counts_the_spans_an_otlp_exporter_sends(procs: Procs) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _, url = services.start_otlp_sink(procs, cpus=None)
    assert services.sink_stats(url) == {"exports": 0, "spans": 0, "bytes": 0, "unreadable": 0}
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces")))
    tracer = provider.get_tracer("test")
    for name in ("one", "two", "three"):
        tracer.start_span(name).end()
    provider.shutdown()
    stats = services.sink_stats(url)
    assert stats["exports"] == 3  # one export per span with the simple processor
    assert stats["spans"] == 3
    assert stats["bytes"] > 0
    assert stats["unreadable"] == 0


def test_an_unreadable_export_has_no_span_count() -> None:
    pytest.importorskip("opentelemetry.proto")
    assert services.count_spans(b"\xff\xff not protobuf") is None
    assert services.count_spans(b"") == 0


def test_redis_runs_on_loopback_and_answers_commands(procs: Procs, tmp_path: Path) -> None:
    if services.redis_server() is None:
        pytest.skip("redis-server is not installed (make bench-deps)")
    _, port = services.start_redis(procs, tmp_path, cpus=None)
    assert services.redis_command(port, "DBSIZE") == "0"
    assert services.redis_command(port, "SET", "bench:key", "1") == "OK"
    assert services.redis_command(port, "DBSIZE") == "1"
    with pytest.raises(services.ServiceError, match="unknown command"):
        services.redis_command(port, "NOSUCHCOMMAND")


def test_redis_missing_is_said_with_the_package_to_install(
    procs: Procs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "redis_server", lambda: None)
    with pytest.raises(services.ServiceError, match="apt-get install redis-server"):
        services.start_redis(procs, tmp_path, cpus=None)
