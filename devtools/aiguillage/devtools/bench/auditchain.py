"""``python -m aiguillage.devtools.bench.auditchain``: what the audit hash chain costs.

Times, on a record like a failed-over chat request's (three attempts, about 1 KB of JSON):
serialising it (what every record always cost), linking it into the chain (the SHA-256 of
the line and the chain fields: what the chain adds on a request's path), and a checkpoint
with its Ed25519 signature (made once per ``AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS`` records,
after the request's loop iteration). Prints the median and fastest of several rounds, in
microseconds per operation, and the checkpoint's cost spread over the default checkpoint
interval.

One process, no network, no file: the numbers move with the machine's load (compare rows of
one run, not runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from aiguillage.operator.auditkeys import new_key_pair
from aiguillage.sidecar.audit import AttemptRecord, AuditRecord
from aiguillage.sidecar.auditchain import EVERY_RECORDS, AuditChain, ChainSettings
from aiguillage.sidecar.residency import EU


def record() -> AuditRecord:
    rec = AuditRecord(
        time=1_767_225_600.123456,
        request_id="9f2c4b7a1e3d5f60000000000000a1b2",
        namespace="support",
        pod="summarizer-7d9f4c8b6-x2k9q",
        service_account="summarizer",
        route="sovereign-chat",
        model="sovereign-chat",
        operation="chat.completions",
        stream=True,
        residency={"locations": sorted(EU), "jurisdictions": None},
        config_hash="5d41402abc4b2a76b9719d911017c592ae5d41402abc4b2a76b9719d911017c5",
        input_tokens=812,
        output_tokens=164,
        cost_eur=Decimal("0.000130"),
    )
    rec.attempts = [
        AttemptRecord(
            "openai-us",
            "gpt-4o-mini",
            "US",
            "US",
            "skipped_residency",
            detail="is located in US, outside locations [EU]",
        ),
        AttemptRecord("mistral-eu", "mistral-small-latest", "FR", "FR", "http_error", 41.2, 503),
        AttemptRecord("ionos-de", "llama-3.3-70b", "DE", "DE", "ok", 388.9),
    ]
    return rec


def per_call(fn: Callable[[], object], calls: int, rounds: int) -> list[float]:
    """Microseconds per call, one value per round."""
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - start) * 1e6 / calls)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20_000, help="calls per round")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    rec = record()
    body = rec.to_json()
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "signing-key.pem"
        key.write_bytes(new_key_pair().private_pem)
        chain = AuditChain(
            "support/summarizer-7d9f4c8b6-x2k9q/0123456789ab", ChainSettings(str(key))
        )
        line = chain.link(body)
        rows = [
            ("serialise the record (always done)", per_call(rec.to_json, args.calls, args.rounds)),
            (
                "link it into the chain (sha256 + fields)",
                per_call(lambda: chain.link(body), args.calls, args.rounds),
            ),
            (
                "checkpoint, signed (Ed25519)",
                per_call(chain.checkpoint, max(1, args.calls // 20), args.rounds),
            ),
        ]
    print(f"record line: {len(line)} bytes; {args.rounds} rounds of {args.calls} calls")
    print(f"{'':44s} {'median':>8s} {'fastest':>8s}   (µs per call)")
    for name, values in rows:
        print(f"{name:44s} {statistics.median(values):8.2f} {min(values):8.2f}")
    checkpoint = statistics.median(rows[2][1])
    print(
        f"a checkpoint every {EVERY_RECORDS} records adds {checkpoint / EVERY_RECORDS:.3f} µs "
        "per record, after the request"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
