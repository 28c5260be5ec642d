"""Feature-cost variants: configs that differ by one feature, checks that refuse a variant
which is not what it claims (no switch, feature not on the request path), the pairs each
feature compares, and one small run of the whole phase against real sidecars."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aiguillage.devtools.bench import derive, features, tools
from aiguillage.devtools.bench.procs import Procs
from aiguillage.devtools.bench.proxy import QUICK, Load
from aiguillage.devtools.bench.systems import System, render_sidecar_config, start_upstream
from aiguillage.sidecar.config import CONFIG_FILE, SidecarConfig
from aiguillage.sidecar.privacy.errors import PersonalDataBlocked


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # the checks wait for a record that never comes: not for seconds in unit tests
    monkeypatch.setattr(features, "AUDIT_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(features, "AUDIT_OFF_WAIT_SECONDS", 0.3)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[features.Context]:
    with Procs(tmp_path / "logs") as procs:
        yield features.Context(procs, "http://127.0.0.1:9", tmp_path, None, None)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    render_sidecar_config("http://127.0.0.1:9", tmp_path / "base")
    return tmp_path / "base"


def _config(variant: features.Variant, base: Path, ctx: features.Context) -> SidecarConfig:
    root = ctx.workdir / variant.key
    features._write_config(base, root, variant, ctx)
    return SidecarConfig.model_validate_json((root / "config" / CONFIG_FILE).read_bytes())


def test_the_no_residency_variant_differs_only_by_its_route_residency(
    base: Path, context: features.Context
) -> None:
    standard = _config(features.VARIANT["standard"], base, context)
    bare = _config(features.VARIANT["no_residency"], base, context)
    assert standard.routes["bench-chat"].residency.locations
    assert bare.routes["bench-chat"].residency.locations is None
    assert bare.routes["bench-chat"].residency.jurisdictions is None
    assert bare.routes["bench-chat"].targets == standard.routes["bench-chat"].targets
    assert bare.hash != standard.hash  # sealed anew


def test_the_data_protection_variant_blocks_the_probe_term_and_lets_the_body_through(
    base: Path, context: features.Context
) -> None:
    route = _config(features.VARIANT["data_protection"], base, context).routes["bench-chat"]
    engine = route.protection
    assert engine is not None
    probe = {"messages": [{"role": "user", "content": f"About {features.PROBE_TERM}."}]}
    with pytest.raises(PersonalDataBlocked):
        engine.scan("chat.completions", probe).apply(location="FR", jurisdiction="FR")
    # the measured body holds personal data, only audited toward the EU targets
    body = json.loads(features.personal_body())
    assert 900 <= len(body["messages"][0]["content"]) <= 1100
    scan = engine.scan("chat.completions", body)
    assert scan.located
    scan.apply(location="FR", jurisdiction="FR")  # not blocked


def test_the_budget_variant_needs_limits_in_the_compiled_config(
    base: Path, context: features.Context
) -> None:
    reason = features._limits_supported()
    if reason is not None:  # the sidecar's config has no limits yet: the row says so
        assert "Route.limits" in reason
        assert features.VARIANT["redis_budget"].requires is not None
        assert features.VARIANT["redis_budget"].requires(context) == reason
        return
    context.redis_port = 6399
    config = _config(features.VARIANT["redis_budget"], base, context)
    assert config.shared_store is not None
    assert config.shared_store.url == "redis://127.0.0.1:6399/0"
    assert config.routes["bench-chat"].limits


def _started(tmp_path: Path, key: str, url: str = "http://127.0.0.1:9") -> features.Started:
    (tmp_path / key).mkdir()
    log = tmp_path / key / "sidecar.log"
    log.write_text("INFO listening\n")
    system = System("aiguillage", url, [])
    return features.Started(features.VARIANT[key], system, tmp_path / key, log)


RECORD = '{"time": 1.0, "requestId": "r1", "outcome": "ok"}\n'


@pytest.mark.usefixtures("short_waits")
def test_audit_off_is_refused_while_the_sidecar_writes_the_record_anyway(
    tmp_path: Path, context: features.Context
) -> None:
    started = _started(tmp_path, "audit_off")
    assert features._verify_audit_off(started, context) is None  # nothing written: it is off
    (started.root / "off").write_text(RECORD)
    reason = features._verify_audit_off(started, context)
    assert reason is not None
    assert "needs sidecar switch AIGUILLAGE_AUDIT_LOG=off" in reason
    assert "a file named 'off'" in reason
    (started.root / "off").unlink()
    started.log.write_text(RECORD)  # to stdout
    assert "wrote the record to stdout" in (features._verify_audit_off(started, context) or "")


@pytest.mark.usefixtures("short_waits")
def test_audit_destinations_must_receive_the_record(
    tmp_path: Path, context: features.Context
) -> None:
    started = _started(tmp_path, "audit_stdout")
    started.stdout_file.write_text("")
    assert "no audit record on stdout" in (features._verify_audit_stdout(started, context) or "")
    started.stdout_file.write_text(RECORD)
    assert features._verify_audit_stdout(started, context) is None


class _Answers(BaseHTTPRequestHandler):
    status = 200
    body = b""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Answers]]]:
    handler = type("Handler", (_Answers,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("key", "answer_while_on", "needed", "answer_when_off"),
    [
        # metrics still counted: no switch; a 404 for /metrics: they are off
        ("metrics_off", (200, b'aiguillage_requests_total{route="bench-chat"} 1\n'),
         "AIGUILLAGE_METRICS=off", (404, b"not found")),
        # a deny-listed term answered 200: sent upstream unscanned; a 403: the rules apply
        ("data_protection", (200, b'{"choices": []}'), "Route.data_protection",
         (403, b'{"error": {}}')),
    ],
)  # fmt: skip
def test_a_variant_is_refused_while_its_feature_is_not_what_it_claims(
    tmp_path: Path,
    context: features.Context,
    server: tuple[str, type[_Answers]],
    key: str,
    answer_while_on: tuple[int, bytes],
    needed: str,
    answer_when_off: tuple[int, bytes],
) -> None:
    url, handler = server
    started = _started(tmp_path, key, url)
    verify = features.VARIANT[key].verify
    assert verify is not None
    handler.status, handler.body = answer_while_on
    reason = verify(started, context)
    assert reason is not None
    assert needed in reason
    handler.status, handler.body = answer_when_off
    assert verify(started, context) is None


def test_each_round_runs_a_features_two_sidecars_back_to_back_first_one_then_the_other() -> None:
    feats = [features.FEATURE["residency"], features.FEATURE["data_protection"]]
    first = features.schedule(feats, 0)
    second = features.schedule(feats, 1)
    assert [(f.key, order) for f, order in first] == [
        ("residency", (("no_residency", "plain"), ("standard", "plain"))),
        ("data_protection", (("standard", "personal"), ("data_protection", "personal"))),
    ]
    # next round: the other feature first, and on before off
    assert [(f.key, order) for f, order in second] == [
        ("data_protection", (("data_protection", "personal"), ("standard", "personal"))),
        ("residency", (("standard", "plain"), ("no_residency", "plain"))),
    ]
    assert features.schedule([], 3) == []


def _run(rps: float, p50: float, p99: float, cpu: float, errors: int = 0) -> dict[str, Any]:
    return {"rps": rps, "completed": 10, "errors": errors, "cpu_us_per_request": cpu,
            "latency_ms": {"p50": p50, "p99": p99}}  # fmt: skip


def test_a_features_cost_compares_runs_of_the_same_round_not_medians_of_far_apart_runs() -> None:
    # The machine is twice as fast in round 2 than in round 1, and the feature costs 5 % in
    # each: the paired cost says 0.95x.
    pairs = [
        (_run(950.0, 2.1, 5.0, 110.0), _run(1000.0, 2.0, 4.0, 100.0)),
        (_run(1900.0, 1.1, 3.0, 105.0), _run(2000.0, 1.0, 2.5, 100.0)),
        # the machine changed between the two runs of this round: an outlier the median drops
        (_run(2000.0, 1.1, 3.0, 104.0), _run(4000.0, 1.0, 2.0, 100.0)),
        # a failed run leaves its round out
        (_run(0.0, 0.0, 0.0, 0.0, errors=10), _run(1000.0, 1.0, 2.0, 100.0)),
    ]
    cost = features.paired_costs(pairs)
    assert cost["rounds"] == 3
    assert cost["rps_ratio_runs"] == [0.95, 0.95, 0.5]
    assert cost["rps_ratio"] == 0.95
    assert cost["added_p50_ms"] == 0.1
    assert cost["added_p99_ms"] == 1.0
    assert cost["cpu_us_added"] == 5.0
    assert cost["cpu_rps_ratio"] == round(100.0 / 105.0, 3)  # of 100/110, 100/105, 100/104
    assert cost["on_rps"] == 1900.0
    assert cost["off_rps"] == 2000.0


def test_rounds_are_summarized_by_medians_without_failed_runs() -> None:
    runs = [
        {"rps": 100.0, "completed": 10, "errors": 0, "cpu_us_per_request": 300.0,
         "latency_ms": {"p50": 1.0, "p99": 3.0}},
        {"rps": 120.0, "completed": 10, "errors": 0, "cpu_us_per_request": 310.0,
         "latency_ms": {"p50": 2.0, "p99": 4.0}},
        {"rps": 110.0, "completed": 10, "errors": 1, "cpu_us_per_request": 320.0,
         "latency_ms": {"p50": 1.5, "p99": 9.0}},
        {"rps": 0.0, "completed": 5, "errors": 5, "cpu_us_per_request": 0.0,
         "latency_ms": {"p50": 0.0, "p99": 0.0}},
    ]  # fmt: skip
    summary = features.summarize_runs(runs)
    assert summary["rps"] == 110.0
    assert summary["p50_ms"] == 1.5
    assert summary["p99_ms"] == 4.0
    assert summary["cpu_us_per_request"] == 310.0
    assert summary["errors"] == 6
    assert summary["rounds"] == 4


def test_the_phase_measures_what_runs_and_says_why_the_rest_does_not(tmp_path: Path) -> None:
    plan = dataclasses.replace(
        QUICK, feature_concurrencies=(1,), feature_loads={1: Load(30, 3)}, feature_rounds=1
    )
    layout = {"proxy_cpus": None, "load_cpus": None}
    with Procs(tmp_path / "logs") as procs:
        _, upstream = start_upstream(procs, cpus=None, chunks=4, interval=0.0)
        result = features.run_features(
            procs, upstream, tools.build_loadgen(), plan, layout, tmp_path
        )
    variants = result["variants"]
    for key in ("standard", "no_residency", "audit_stdout", "audit_off", "metrics_off"):
        assert "unavailable" not in variants[key], variants[key]
        assert result["measured"][f"{key}/plain"]["1"]["rps"] > 0
    # the sidecar has every switch and feature these variants need: each passed its check
    assert "unavailable" not in variants["data_protection"], variants["data_protection"]
    assert result["measured"]["data_protection/personal"]["1"]["rps"] > 0
    # each measurable feature compared within its rounds
    assert result["paired"]["residency"]["1"]["rounds"] == 1
    assert result["paired"]["data_protection"]["1"]["rps_ratio"] is not None
    rows = {r["key"]: r for r in derive.feature_rows(result)}
    assert (
        rows["residency"]["by_concurrency"]["1"]["rps_ratio"]
        == (result["paired"]["residency"]["1"]["rps_ratio"])
    )
    for row in rows.values():
        assert row.get("unavailable") or row["by_concurrency"]["1"]["on_rps"]
    if "unavailable" not in variants["tracing"]:
        assert variants["tracing"]["collector"]["spans"] > 0
