"""``python -m aiguillage.devtools.bench.privacy``: what data protection adds to a request.

Times the engine's work on one chat request whose user message is 1 KB, 16 KB or 128 KB of
three kinds of text — prose with no personal data, text full of look-alikes (order numbers,
dates, prices, versions: the detectors run and find nothing), and text with personal data
(ten values — e-mail, phone, IBAN, card... — every ~300 characters) — from the parsed body to the
body the target receives: scan once, then apply for a non-EU target (pseudonymise e-mails
and phones, redact the rest), as the request path does per attempt. It prints the median
and fastest time per request and per KB, so that linearity is visible, and the resident memory the
detection libraries add once imported and used.

Run on one process, no network; the numbers move with the machine's load (compare rows of
one run, not runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiguillage.devtools.docs import publish
from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.rules import DataProtectionRules

RULES = {
    "rules": [
        {"categories": ["email", "phone"], "action": "pseudonymise",
         "when": {"notJurisdictions": ["EU"]}},
        {"categories": ["iban", "vat", "national_id", "payment_card", "ip_address"],
         "action": "redact", "when": {"notJurisdictions": ["EU"]}},
        {"categories": ["email", "phone", "iban", "vat", "national_id", "payment_card",
                        "ip_address"], "action": "audit"},
    ]
}  # fmt: skip
SIZES = (1024, 16 * 1024, 128 * 1024)
SECTION = "privacy-bench"

PROSE = (
    "The committee reviewed the quarterly report and agreed that the new onboarding process "
    "should be simplified before the summer. Several members asked for clearer guidance on "
    "how customer questions are routed, and the support team will present a proposal. "
)
LOOK_ALIKES = (
    "Order #48291057 shipped on 2024-06-13 at 12:30; invoice INV-2024-000123 totals "
    "1 250,00 EUR. Upgrade to v2.14.3 (build 19045), see ticket 4567-8912 and EAN "
    "4006381333931. Tracking 1Z999AA10123456784, ref. 0504557540, page 12 of 240. "
)
PERSONAL = (
    "Please contact jean.dupont@example.fr or +33 6 12 34 56 78 about the refund to "
    "FR82 1390 9960 3082 4628 1948 219; her card 4111 1111 1111 1111 was used from "
    "192.0.2.44, tax id DE626018158, NIR 2 19 07 83 137 050 52. Thanks, the team. "
)
TEXTS = {"no personal data": PROSE, "look-alikes": LOOK_ALIKES, "personal data": PERSONAL}


def text_of(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def body(text: str) -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    }


def timings(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median and fastest of ``rounds`` timed runs, in seconds (the fastest is the one the
    other processes on the machine disturbed least)."""
    work()  # warm: compiled patterns, metadata loaded
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


Row = tuple[str, int, tuple[float, float], int]


def measure(engine: DataProtectionEngine, rounds: int) -> list[Row]:
    """(kind of text, size, (median, fastest) seconds, findings) for every size and kind."""
    rows = []
    for kind, unit in TEXTS.items():
        for size in SIZES:
            request = body(text_of(unit, size))

            def work(request: dict[str, Any] = request) -> object:
                return engine.scan("chat.completions", request).apply(
                    location="US", jurisdiction="US"
                )

            seconds = timings(work, rounds)
            findings = len(engine.scan("chat.completions", request).located)
            rows.append((kind, size, seconds, findings))
    return rows


_RSS = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
import aiguillage.sidecar.server
before = rss()
from aiguillage.devtools.docs import write_between_markers
from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.rules import DataProtectionRules
engine = DataProtectionEngine(DataProtectionRules.model_validate(json.loads(sys.argv[1])))
engine.find(sys.argv[2])
print(json.dumps({"before": before, "after": rss()}))
"""


def rss_cost() -> tuple[float, float]:
    """RSS (MB) of a process that imported the sidecar's server, and after it compiled the
    rules and scanned one text with every built-in category (libraries loaded and used)."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS, json.dumps(RULES), PERSONAL + "+49 30 1234567"],
        capture_output=True,
        text=True,
        check=True,
    )
    numbers = json.loads(out.stdout)
    return numbers["before"], numbers["after"]


def report(
    rows: list[Row], rss: tuple[float, float], rounds: int, load: float, command: str = ""
) -> str:
    command = command or f"python -m aiguillage.devtools.bench.privacy --rounds {rounds}"
    lines = [
        f"Generated by `{command}`: scan and "
        "apply for a non-EU target, one chat request, median and fastest of the rounds "
        f"(load average {load:.1f} on {os.cpu_count()} cores during the run).",
        "",
        "| Text | Size | Findings | Median | Fastest | Fastest per KB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, size, (median, fastest), findings in rows:
        kb = size / 1024
        lines.append(
            f"| {kind} | {kb:.0f} KB | {findings} | {median * 1000:.3f} ms "
            f"| {fastest * 1000:.3f} ms | {fastest * 1e6 / kb:.1f} µs |"
        )
    lines += ["", linearity(rows)]
    before, after = rss
    lines += [
        "",
        f"Resident memory: {before:.1f} MB after importing the sidecar's server, "
        f"{after:.1f} MB once rules with every built-in category are compiled and used "
        f"(phonenumbers, python-stdnum, google-re2 and the engine): **+{after - before:.1f} MB**, "
        "paid only by sidecars whose config has data-protection rules.",
    ]
    return "\n".join(lines) + "\n"


def linearity(rows: list[Row]) -> str:
    """How the fastest time per KB at the largest size compares with the smallest, per kind of
    text (1.0×: exactly linear; the smallest size also carries the per-request fixed cost)."""
    parts = []
    for kind in dict.fromkeys(kind for kind, _, _, _ in rows):
        mine = sorted((size, fastest) for k, size, (_, fastest), _ in rows if k == kind)
        (small, t_small), (large, t_large) = mine[0], mine[-1]
        ratio = (t_large / large) / (t_small / small) if t_small > 0 else float("nan")
        parts.append(f"{kind} {ratio:.2f}×")
    return (
        "Time per KB at the largest size against the smallest (1.00×: linear in the prompt "
        "size): " + ", ".join(parts) + "."
    )


def results(rounds: int) -> dict[str, Any]:
    """The whole micro-benchmark as data (for `make bench`'s report and history)."""
    engine = DataProtectionEngine(DataProtectionRules.model_validate(RULES))
    rows = measure(engine, rounds)
    load = os.getloadavg()[0]
    before, after = rss_cost()
    return {
        "rounds": rounds,
        "load": round(load, 2),
        "rss_mb": [round(before, 1), round(after, 1)],
        "rows": [
            {"text": kind, "bytes": size, "median_s": median, "fastest_s": fastest,
             "findings": findings}
            for kind, size, (median, fastest), findings in rows
        ],
    }  # fmt: skip


def report_of(data: dict[str, Any], command: str) -> str:
    """`report` of what `results` returned."""
    rows = [
        (r["text"], r["bytes"], (r["median_s"], r["fastest_s"]), r["findings"])
        for r in data["rows"]
    ]
    before, after = data["rss_mb"]
    return report(rows, (before, after), data["rounds"], data["load"], command)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench.privacy")
    p.add_argument("--rounds", type=int, default=50, help="timed runs per row")
    p.add_argument("--write", type=Path, help=f"put the tables between the {SECTION} markers")
    args = p.parse_args(argv)
    data = results(args.rounds)
    table = report_of(data, f"python -m aiguillage.devtools.bench.privacy --rounds {args.rounds}")
    publish(table, args.write, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
