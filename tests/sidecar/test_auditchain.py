"""The audit hash chain and its signed checkpoints (``auditchain.py``, written by ``audit.py``).

Trails written here are checked with the auditor's verifier, so a format drift between the
sidecar and ``aiguillage audit verify`` fails these tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import random
from pathlib import Path

import orjson
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.operator.auditkeys import new_key_pair, public_entry
from aiguillage.operator.audittrail.keys import load as load_keys
from aiguillage.operator.audittrail.lines import read
from aiguillage.operator.audittrail.verify import verify
from aiguillage.sidecar.audit import AuditLog
from aiguillage.sidecar.auditchain import (
    GENESIS,
    AuditChain,
    ChainSettings,
    chain_name,
    signed_part,
)
from tests.operator.audittrail._trails import request as record
from tests.sidecar.conftest import (
    MESSAGES,
    StartSidecar,
    all_written,
    eu_target,
    route,
    two_provider_config,
    us_target,
)


def keyfile(tmp_path: Path, namespace: str = "team-a") -> tuple[Path, Path]:
    """A private key file for a sidecar and the directory of its public key."""
    pair = new_key_pair()
    private = tmp_path / f"{namespace}-signing-key.pem"
    private.write_bytes(pair.private_pem)
    public_dir = tmp_path / "public"
    public_dir.mkdir(exist_ok=True)
    name, pem = public_entry(namespace, pair)
    (public_dir / name).write_text(pem)
    return private, public_dir


def lines_of(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_records_link_to_the_previous_line_bytes() -> None:
    chain = AuditChain("team-a/app-1/abc")
    first = chain.link(record("r1").to_json())
    second = chain.link(record("r2").to_json())
    one, two = orjson.loads(first), orjson.loads(second)
    assert (one["chain"], one["seq"], one["prev"]) == ("team-a/app-1/abc", 1, GENESIS)
    assert (two["seq"], two["prev"]) == (2, hashlib.sha256(first).hexdigest())
    # The record itself is unchanged after the chain fields.
    assert {k: v for k, v in one.items() if k not in ("chain", "seq", "prev")} == orjson.loads(
        record("r1").to_json()
    )


def test_chain_names_are_unique_per_start_and_say_whose() -> None:
    a, b = chain_name("support", "app-7d9f"), chain_name("support", "app-7d9f")
    assert a != b
    assert a.startswith("support/app-7d9f/")


def test_a_signed_checkpoint_seals_the_lines_before_it(tmp_path: Path) -> None:
    private, public_dir = keyfile(tmp_path)
    chain = AuditChain("c", ChainSettings(str(private)))
    chain.link(record("r1").to_json())
    line = chain.checkpoint()
    cp = orjson.loads(line)
    assert (cp["kind"], cp["seq"], cp["records"]) == ("checkpoint", 2, 1)
    assert cp["final"] is False
    key = next(iter(load_keys([public_dir]).values()))
    assert cp["keyId"] == key.key_id
    message = signed_part(line)
    assert message is not None
    assert key.verifies(base64.b64decode(cp["sig"]), message)
    # Any other bytes (a different record count) do not verify.
    assert not key.verifies(
        base64.b64decode(cp["sig"]), message.replace(b'"records":1', b'"records":2')
    )


def test_without_a_key_checkpoints_are_unsigned_and_say_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = AuditChain("c", ChainSettings(str(tmp_path / "missing.pem")))
    chain.link(record("r1").to_json())
    with caplog.at_level(logging.WARNING):
        first = orjson.loads(chain.checkpoint())
        chain.checkpoint()
    assert (first["keyId"], first["sig"]) == (None, None)
    warnings = [r for r in caplog.records if "checkpoints are written unsigned" in r.message]
    assert len(warnings) == 1


def test_a_key_mounted_later_or_replaced_is_used_from_the_next_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    chain = AuditChain("c", ChainSettings(str(path)))
    assert orjson.loads(chain.checkpoint())["keyId"] is None
    first, second = new_key_pair(), new_key_pair()
    path.write_bytes(first.private_pem)
    assert orjson.loads(chain.checkpoint())["keyId"] == first.key_id
    path.write_bytes(second.private_pem + b"\n")  # a new file (size differs)
    assert orjson.loads(chain.checkpoint())["keyId"] == second.key_id


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not a key", "is not a PEM private key"),
        (b"", "is not a PEM private key"),
    ],
)
def test_an_unusable_key_file_leaves_checkpoints_unsigned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    path = tmp_path / "signing-key.pem"
    path.write_bytes(content)
    chain = AuditChain("c", ChainSettings(str(path)))
    with caplog.at_level(logging.WARNING):
        assert orjson.loads(chain.checkpoint())["sig"] is None
    assert any(why in r.message for r in caplog.records)


def test_an_rsa_key_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "signing-key.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with caplog.at_level(logging.WARNING):
        assert orjson.loads(AuditChain("c", ChainSettings(str(path))).checkpoint())["sig"] is None
    assert any("not an Ed25519 private key" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS", "many", "expected a whole number > 0"),
        ("AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS", "0", "expected a value > 0"),
        ("AIGUILLAGE_AUDIT_CHECKPOINT_SECONDS", "-1", "expected a value > 0"),
    ],
)
def test_bad_checkpoint_settings_stop_the_sidecar_with_a_message(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit, match=message):
        ChainSettings.from_environment()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGUILLAGE_AUDIT_KEY", "/keys/k.pem")
    monkeypatch.setenv("AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS", "50")
    monkeypatch.setenv("AIGUILLAGE_AUDIT_CHECKPOINT_SECONDS", "2.5")
    assert ChainSettings.from_environment() == ChainSettings("/keys/k.pem", 50, 2.5)


# -- written by the audit log --------------------------------------------------------------


def chained_log(
    path: Path, key: Path, every_records: int = 1000, every_seconds: float = 60
) -> tuple[AuditLog, io.BytesIO]:
    """An audit log to ``path`` chained and signed with ``key``, and its checkpoint copy."""
    copy = io.BytesIO()
    settings = ChainSettings(str(key), every_records, every_seconds)
    chain = AuditChain("team-a/app-1/x", settings)
    return AuditLog(str(path), chain=chain, checkpoint_copy=copy), copy


async def test_a_checkpoint_follows_every_n_records_after_their_batch(
    tmp_path: Path,
) -> None:
    private, public_dir = keyfile(tmp_path)
    path = tmp_path / "audit.jsonl"
    log, copy = chained_log(path, private, every_records=3)
    for i in range(7):
        log.write(record(f"r{i}"))  # all in one batch: one checkpoint after them
    await all_written(log)
    kinds = [line.get("kind", "record") for line in lines_of(path)]
    assert kinds == ["record"] * 7 + ["checkpoint"]
    for i in range(2):
        log.write(record(f"s{i}"))
        await all_written(log)
    log.close()
    kinds = [line.get("kind", "record") for line in lines_of(path)]
    assert kinds == ["record"] * 7 + ["checkpoint"] + ["record"] * 2 + ["checkpoint"]
    assert lines_of(path)[-1]["final"] is True
    # Every checkpoint was also copied, byte for byte.
    checkpoints = [raw for raw in path.read_bytes().splitlines() if b'"checkpoint"' in raw]
    assert copy.getvalue().splitlines() == checkpoints
    result = verify(read([path]), load_keys([public_dir]))
    assert result.holds
    assert result.chains[0].final
    assert not result.chains[0].warnings


async def test_records_are_sealed_after_some_seconds_even_if_few(tmp_path: Path) -> None:
    private, _ = keyfile(tmp_path)
    path = tmp_path / "audit.jsonl"
    log, _copy = chained_log(path, private, every_seconds=0.05)
    log.write(record("r1"))
    deadline = asyncio.get_running_loop().time() + 10
    while not any(line.get("kind") == "checkpoint" for line in lines_of(path)):
        assert asyncio.get_running_loop().time() < deadline, "no timed checkpoint"
        await asyncio.sleep(0.02)
    assert [line.get("kind", "record") for line in lines_of(path)] == ["record", "checkpoint"]
    # With nothing new to seal, no more checkpoints are written.
    count = len(lines_of(path))
    await asyncio.sleep(0.2)
    assert len(lines_of(path)) == count
    log.close()


async def test_a_failing_checkpoint_copy_does_not_stop_the_audit(tmp_path: Path) -> None:
    private, _ = keyfile(tmp_path)
    path = tmp_path / "audit.jsonl"
    copy = io.BytesIO()
    copy.close()  # writing to it raises ValueError
    chain = AuditChain("c", ChainSettings(str(private), 1))
    log = AuditLog(str(path), chain=chain, checkpoint_copy=copy)
    log.write(record("r1"))
    await all_written(log)
    log.write(record("r2"))
    log.close()
    assert [line.get("kind", "record") for line in lines_of(path)] == [
        "record", "checkpoint", "record", "checkpoint",
    ]  # fmt: skip


# -- real sidecars ---------------------------------------------------------------------------


def test_the_caller_identity_is_in_every_record(
    monkeypatch: pytest.MonkeyPatch,
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "support")
    monkeypatch.setenv("POD_NAME", "summarizer-7d9f-x2")
    monkeypatch.setenv("POD_SERVICE_ACCOUNT", "summarizer")
    sc = start_sidecar(two_provider_config(eu, us, route("chat", eu_target(), us_target())))
    sc.client().chat.completions.create(model="chat", messages=MESSAGES)
    refused = sc.raw("POST", "/v1/chat/completions", json={"model": "nope", "messages": []})
    assert refused.status == 404
    answered, refused_record = sc.wait_audit(2)  # the refusal is audited too
    for rec in (answered, refused_record):
        assert (rec["namespace"], rec["serviceAccount"], rec["pod"]) == (
            "support",
            "summarizer",
            "summarizer-7d9f-x2",
        )
        assert rec["chain"].startswith("support/summarizer-7d9f-x2/")
    assert refused_record["outcome"] == "route_not_found"


def test_interleaved_trails_of_several_sidecars_verify(
    lt: LoopThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    """Three sidecars (two namespaces, own keys) serve concurrently and stop; their trails,
    merged line by line with other log lines as a log pipeline would, verify."""
    private = {ns: keyfile(tmp_path, ns)[0] for ns in ("team-a", "team-b")}
    sidecars = []
    for index, namespace in enumerate(["team-a", "team-a", "team-b"]):
        monkeypatch.setenv("POD_NAMESPACE", namespace)
        monkeypatch.setenv("POD_NAME", f"app-{index}")
        sidecars.append(
            start_sidecar(
                two_provider_config(eu, us, route("chat", eu_target(), us_target())),
                audit_chain=ChainSettings(str(private[namespace]), 7, 60),
            )
        )

    async def load() -> None:
        async def one(index: int) -> None:
            client = sidecars[index % 3].async_client()
            await client.chat.completions.create(model="chat", messages=MESSAGES)

        await asyncio.gather(*(one(i) for i in range(60)))

    lt.run(load())
    for sc in sidecars:
        sc.wait_audit(20)
        lt.run(sc.sidecar.stop())
    merged = tmp_path / "pipeline.log"
    merged.write_bytes(
        _interleave([sc.audit_path.read_bytes() for sc in sidecars], random.Random(7))
    )
    result = verify(read([merged]), load_keys([tmp_path / "public"]))
    assert [c.status for c in result.chains] == ["ok", "ok", "ok"], [
        (c.broken, c.warnings) for c in result.chains
    ]
    assert all(c.final and c.records == 20 for c in result.chains)
    assert result.trail.skipped == 30  # the other log lines
    assert result.holds


def _interleave(files: list[bytes], rng: random.Random) -> bytes:
    """Merge files line by line in a random order, keeping each file's order, with other
    programs' log lines in between."""
    queues = [f.splitlines() for f in files]
    out: list[bytes] = []
    noise = 0
    while any(queues):
        q = rng.choice([q for q in queues if q])
        out.append(q.pop(0))
        if noise < 30 and rng.random() < 0.5:
            noise += 1
            out.append(b"2026-01-01T00:00:00Z INFO app: something unrelated happened")
    out.extend(b'{"level": "info", "msg": "json, not audit"}' for _ in range(30 - noise))
    return b"\n".join(out) + b"\n"
