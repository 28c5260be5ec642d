"""Audit records (``audit.py``): one JSON line per request, with every attempt."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from aiguillage.sidecar.audit import AttemptRecord, AuditLog, AuditRecord
from aiguillage.sidecar.config import PolicyFinding


def record(request_id: str = "r1") -> AuditRecord:
    rec = AuditRecord(
        time=1700000000.5,
        request_id=request_id,
        namespace="team-a",
        pod="app-7d9",
        route="chat",
        model="chat",
        operation="chat.completions",
        stream=True,
        residency={"locations": ["FR"], "jurisdictions": None},
        config_hash="abc",
        service_account="summarizer-bot",
    )
    rec.attempts.append(AttemptRecord("us", "gpt", "US", "US", "skipped_residency", detail="why"))
    rec.attempts.append(AttemptRecord("eu", "mistral", "FR", "FR", "http_error", 12.3456, 503))
    rec.attempts.append(AttemptRecord("eu2", "mistral", "FR", "FR", "ok", 40.0))
    rec.input_tokens, rec.output_tokens, rec.cost_eur = 10, 20, Decimal("0.000130")
    return rec


def test_record_shape() -> None:
    assert orjson.loads(record().to_json()) == {
        "time": 1700000000.5,
        "requestId": "r1",
        "namespace": "team-a",
        "serviceAccount": "summarizer-bot",
        "pod": "app-7d9",
        "route": "chat",
        "model": "chat",
        "operation": "chat.completions",
        "stream": True,
        "outcome": "ok",
        "status": 200,
        "residency": {"locations": ["FR"], "jurisdictions": None},
        "attempts": [
            {
                "provider": "us",
                "model": "gpt",
                "location": "US",
                "jurisdiction": "US",
                "outcome": "skipped_residency",
                "latencyMs": 0.0,
                "detail": "why",
            },
            {
                "provider": "eu",
                "model": "mistral",
                "location": "FR",
                "jurisdiction": "FR",
                "outcome": "http_error",
                "latencyMs": 12.346,
                "status": 503,
            },
            {
                "provider": "eu2",
                "model": "mistral",
                "location": "FR",
                "jurisdiction": "FR",
                "outcome": "ok",
                "latencyMs": 40.0,
            },
        ],
        "usage": {"inputTokens": 10, "outputTokens": 20},
        "costEur": "0.000130",  # a string: no float rounding of money
        "configHash": "abc",
        "limits": [],
    }


def test_policy_findings_of_an_attempt_are_in_its_record() -> None:
    rec = record()
    finding = PolicyFinding(policy="eu-only", reason='provider "us" is located in US')
    rec.attempts[-1].policy_findings = (finding,)
    attempts = orjson.loads(rec.to_json())["attempts"]
    assert attempts[-1]["policyFindings"] == [
        {"policy": "eu-only", "reason": 'provider "us" is located in US'}
    ]
    assert "policyFindings" not in attempts[0]  # only where a policy found something


def test_unknown_cost_is_null() -> None:
    rec = record()
    rec.cost_eur = None
    assert orjson.loads(rec.to_json())["costEur"] is None


async def test_log_appends_one_line_per_record_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(orjson.dumps({"requestId": "from-before"}) + b"\n")
    log = AuditLog(str(path))

    log.write(record("a"))
    log.write(record("b"))
    await asyncio.sleep(0)  # the flush is scheduled on the loop, not done per write
    await asyncio.sleep(0)

    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["requestId"] for line in lines] == ["from-before", "a", "b"]
    log.close()


async def test_log_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = AuditLog("-")
    log.write(record("to-stdout"))
    log.close()

    out = capsysbinary.readouterr().out
    assert orjson.loads(out)["requestId"] == "to-stdout"
