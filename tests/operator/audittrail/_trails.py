"""Trails for the auditor's tests: real chains (the sidecar's own AuditChain), signed with
fresh keys, written to files, and ways to tamper with them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from aiguillage.operator.auditkeys import KeyPair, new_key_pair, public_entry
from aiguillage.sidecar.audit import AttemptRecord, AuditRecord
from aiguillage.sidecar.auditchain import AuditChain, ChainSettings


@dataclass
class Keys:
    """Key pairs by namespace, written where a sidecar and an auditor find them."""

    root: Path

    def __post_init__(self) -> None:
        self.pairs: dict[str, KeyPair] = {}
        self.public_dir = self.root / "public-keys"
        self.public_dir.mkdir(parents=True, exist_ok=True)

    def private_file(self, namespace: str) -> Path:
        if namespace not in self.pairs:
            pair = self.pairs[namespace] = new_key_pair()
            (self.root / f"{namespace}.key").write_bytes(pair.private_pem)
            name, pem = public_entry(namespace, pair)
            (self.public_dir / name).write_text(pem)
        return self.root / f"{namespace}.key"


def request(
    request_id: str,
    namespace: str = "team-a",
    *,
    service_account: str = "bot",
    route: str = "chat",
    attempts: Iterable[AttemptRecord] = (),
    outcome: str = "ok",
    status: int = 200,
    tokens: tuple[int, int] = (10, 20),
    cost: str | None = "0.000130",
    residency: dict[str, list[str] | None] | None = None,
    time: float = 1_767_225_600.0,  # 2026-01-01
) -> AuditRecord:
    rec = AuditRecord(
        time=time,
        request_id=request_id,
        namespace=namespace,
        pod=f"{service_account}-pod",
        service_account=service_account,
        route=route,
        model=route,
        operation="chat.completions",
        stream=False,
        residency=residency
        if residency is not None
        else {"locations": None, "jurisdictions": None},
        outcome=outcome,
        status=status,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_eur=None if cost is None else Decimal(cost),
    )
    rec.attempts.extend(
        attempts or [AttemptRecord("mistral-eu", "mistral-small", "FR", "FR", "ok", 12.0)]
    )
    return rec


def chain_lines(
    keys: Keys | None,
    records: Iterable[AuditRecord],
    *,
    name: str = "team-a/app-1/0001",
    namespace: str = "team-a",
    every: int = 5,
    final: bool = True,
) -> list[bytes]:
    """One sidecar's lines: each record linked, a checkpoint every ``every`` records, and a
    final one (unless ``final`` is False: the sidecar is still running)."""
    key = str(keys.private_file(namespace)) if keys else "/nonexistent/key.pem"
    chain = AuditChain(name, ChainSettings(key, every))
    out = []
    for rec in records:
        out.append(chain.link(rec.to_json()))
        if chain.due:
            out.append(chain.checkpoint())
    if final:
        out.append(chain.checkpoint(final=True))
    return out


def write(path: Path, lines: Iterable[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path
