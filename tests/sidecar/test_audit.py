"""Audit records (``audit.py``): one JSON line per request, with every attempt, in a file that
follows log rotation and survives a full disk without losing a record."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.operator.audittrail.lines import read
from aiguillage.operator.audittrail.verify import verify
from aiguillage.sidecar.audit import BATCH_RECORDS, AttemptRecord, AuditLog, AuditRecord
from aiguillage.sidecar.config import PolicyFinding
from aiguillage.sidecar.privacy.findings import FindingsSummary
from aiguillage.sidecar.privacy.rules import Action
from tests.sidecar.conftest import (
    MESSAGES,
    StartSidecar,
    all_written,
    eu_target,
    route,
    two_provider_config,
    wait_for,
)


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


def test_data_protection_counts_per_attempt_and_for_the_request() -> None:
    rec = record()
    assert "dataProtection" not in orjson.loads(rec.to_json())  # no rules: nothing looked for
    refused, answered = FindingsSummary(), FindingsSummary()
    refused.add("iban", Action.BLOCK)
    answered.add("iban", Action.AUDIT)
    answered.add("email", Action.PSEUDONYMISE, 2)
    rec.attempts[0].data_protection = refused
    rec.attempts[-1].data_protection = answered
    rec.data_found = {"email": 2, "iban": 1}
    out = orjson.loads(rec.to_json())
    assert out["attempts"][0]["dataProtection"] == {"iban": {"block": 1}}
    assert "dataProtection" not in out["attempts"][1]
    assert out["dataProtection"] == {
        "found": {"email": 2, "iban": 1},
        # What was done to the body the client's answer came from: the last attempt's.
        "applied": {"email": {"pseudonymise": 2}, "iban": {"audit": 1}},
    }


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
    assert ids(path) == ["from-before"]  # written with their batch, not per record
    await all_written(log)

    assert ids(path) == ["from-before", "a", "b"]
    log.close()


async def test_a_full_batch_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))

    for n in range(BATCH_RECORDS):
        log.write(record(f"r{n}"))

    assert ids(path) == [f"r{n}" for n in range(BATCH_RECORDS)]  # no turn of the loop needed
    log.close()


async def test_a_record_that_cannot_be_serialised_loses_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    lost: list[tuple[str, str, int]] = []
    log.count_error = lambda metric, reason, n: lost.append((metric, reason, n))
    broken = record("broken")
    broken.limits = [{"not json": object()}]

    for each in (record("before"), broken, record("after")):
        log.write(each)
    await all_written(log)

    assert ids(path) == ["before", "after"]
    assert lost == [("aiguillage_audit_records_lost_total", "TypeError", 1)]
    log.close()


async def test_log_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = AuditLog("-")
    log.write(record("to-stdout"))
    log.close()

    out = capsysbinary.readouterr().out
    assert orjson.loads(out)["requestId"] == "to-stdout"


# -- rotation --------------------------------------------------------------------------------------


def ids(path: Path) -> list[str]:
    """The request ids of the records in ``path`` (the audit chain's checkpoints left out)."""
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [line["requestId"] for line in lines if line.get("kind") != "checkpoint"]


async def written(log: AuditLog, *request_ids: str) -> None:
    for rid in request_ids:
        log.write(record(rid))
    await all_written(log)


async def test_a_renamed_file_is_followed_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), check_every=0)
    await written(log, "a")
    path.rename(tmp_path / "audit.jsonl.1")  # logrotate's default: rename (then create)

    await written(log, "b", "c")

    assert ids(tmp_path / "audit.jsonl.1") == ["a"]
    assert ids(path) == ["b", "c"]
    log.close()


async def test_a_renamed_and_recreated_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), check_every=0)
    await written(log, "a")
    path.rename(tmp_path / "audit.jsonl.1")
    path.touch()  # logrotate "create"

    await written(log, "b")

    assert ids(tmp_path / "audit.jsonl.1") == ["a"]
    assert ids(path) == ["b"]
    log.close()


async def test_copytruncate_leaves_no_hole(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), check_every=0)
    await written(log, "a", "b")
    (tmp_path / "audit.jsonl.1").write_bytes(path.read_bytes())  # logrotate copytruncate
    with path.open("r+b") as f:
        f.truncate(0)

    await written(log, "c")

    # Appending: the next line starts the emptied file, not at the old offset after NULs.
    assert path.read_bytes() == record("c").to_json() + b"\n"
    log.close()


async def test_reopen_follows_a_rename_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), check_every=3600)  # only an explicit reopen (SIGHUP) follows
    await written(log, "a")
    path.rename(tmp_path / "audit.jsonl.1")

    log.reopen()
    assert path.exists()
    await written(log, "b")

    assert ids(path) == ["b"]
    log.close()


# -- write errors ----------------------------------------------------------------------------------


class Counted:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, metric: str, reason: str, records: int) -> None:
        self.calls.append((metric, reason, records))


async def test_a_file_that_cannot_be_written_falls_back_whole_records(tmp_path: Path) -> None:
    fallback = tmp_path / "stdout"
    with fallback.open("ab") as out:
        log = AuditLog("/dev/full", fallback=out, retry_every=3600)
        counted = Counted()
        log.count_error = counted
        await written(log, "a", "b")
        await written(log, "c")
        log.close()

    assert ids(fallback) == ["a", "b", "c"]
    assert counted.calls == [
        ("aiguillage_audit_write_errors_total", "ENOSPC", 2),
        ("aiguillage_audit_write_errors_total", "ENOSPC", 1),
    ]


async def test_a_file_that_cannot_be_opened_falls_back_and_is_retried(tmp_path: Path) -> None:
    fallback = tmp_path / "stdout"
    missing_dir = tmp_path / "not-yet"
    with fallback.open("ab") as out:
        log = AuditLog(str(missing_dir / "audit.jsonl"), fallback=out, retry_every=0)
        await written(log, "a")
        missing_dir.mkdir()  # the volume appears
        await written(log, "b")
        log.close()

    assert ids(fallback) == ["a"]
    assert ids(missing_dir / "audit.jsonl") == ["b"]


def test_a_full_disk_loses_no_record_and_answers_every_request(
    tmp_path: Path,
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = small_disk(tmp_path / "disk")
    try:
        filler = disk / "filler"
        fill(filler)
        fallback_path = tmp_path / "stdout"
        with fallback_path.open("ab") as fallback:
            sc = start_sidecar(
                two_provider_config(eu, us, route("chat", eu_target())),
                audit_path=disk / "audit.jsonl",
                audit_fallback=fallback,
            )
            body = {"model": "chat", "messages": MESSAGES}
            sent = []
            for i in range(40):
                rid = f"full-{i}"
                resp = sc.raw(
                    "POST", "/v1/chat/completions", json=body, headers={"x-request-id": rid}
                )
                assert resp.status == 200  # answered requests stay answered
                sent.append(rid)

            def audited() -> list[str]:
                return ids(disk / "audit.jsonl") + ids(fallback_path)

            wait_for(lambda: len(audited()) >= len(sent), what="every record somewhere")
            assert sorted(audited()) == sorted(sent)  # zero lost, zero duplicated
            diverted = len(ids(fallback_path))
            assert diverted > 0
            assert sc.metric("aiguillage_audit_write_errors_total", reason="ENOSPC") == diverted
            assert "cannot be written (ENOSPC)" in caplog.text

            # Space comes back: the file is retried and used again.
            filler.unlink()

            def back_in_the_file() -> bool:
                rid = f"later-{len(sent)}"
                sc.raw("POST", "/v1/chat/completions", json=body, headers={"x-request-id": rid})
                sent.append(rid)
                # Any of them: a record is written with its batch, after its answer.
                return any(r.startswith("later-") for r in ids(disk / "audit.jsonl"))

            wait_for(back_in_the_file, timeout=10, what="records back in the file")
            sc.lt.run(sc.sidecar.stop())
            assert sorted(audited()) == sorted(sent)
            # The chain runs through the file and stdout: nothing missing, nothing torn.
            trail = read([disk / "audit.jsonl", fallback_path])
            (chain,) = verify(trail, {}, require_signatures=False).chains
            assert (chain.status, chain.records, chain.final) == ("ok", len(sent), True)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def small_disk(where: Path) -> Path:
    """A real 64 KiB filesystem (tmpfs); skips the test where mounting is not allowed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the /dev/full tests cover the write path)")
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    return where


def fill(path: Path) -> None:
    """Write ``path`` until its filesystem is full."""
    with path.open("wb", buffering=0) as f, pytest.raises(OSError, match="space") as full:  # noqa: PT012
        while True:
            f.write(b"\0" * 1024)
    assert full.value.errno == errno.ENOSPC


def entries(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def test_audit_off_writes_no_record_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.chdir(tmp_path)
    fallback = io.BytesIO()
    log = AuditLog("off", fallback=fallback)
    log.write(record("not-written"))
    await all_written(log)
    log.close()

    assert entries(tmp_path) == []  # no file named "off"
    assert capsysbinary.readouterr().out == b""
    assert fallback.getvalue() == b""
