"""The report's figures, from the records of a verified trail.

Records are read defensively: a field missing or of the wrong type (a hand-made line, an
older sidecar) counts as unknown, never stops the report. Records come one at a time, each
once (:func:`aiguillage.operator.audittrail.lines.records` merges lines delivered twice);
only the listed rows (refusals, failovers, violations) are kept, and sorted by time.

Attribution: a request's provider, location and jurisdiction are those of the attempt that
answered it (the last attempt with outcome ``ok``); requests nobody answered are counted
under "(not served)". Tokens and euros are those the record states.

Residency check: for every attempt that contacted a provider (every outcome but
``skipped_*``: data may have been sent even when the attempt failed), the provider's
location and jurisdiction are checked against the rule the record says applied, with the
sidecar's own residency code. There must be none; any found is listed, and flagged.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiguillage.operator.audittrail.report import categories
from aiguillage.sidecar.residency import ResidencyRule, UnknownRegionError, describe

NOT_SERVED = "(not served)"
UNKNOWN = "(unknown)"
Cell = str | int | Decimal


@dataclass
class Table:
    key: str  # CSV file name stem
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""
    alarm: bool = False  # rows here are violations (shown in red)


@dataclass
class Totals:
    requests: int = 0
    served: int = 0
    refused: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    eur: Decimal = Decimal(0)
    failovers: int = 0
    outside_residency: int = 0
    unreadable_rules: int = 0
    first: float | None = None
    last: float | None = None


@dataclass
class _Sums:
    requests: int = 0
    served: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    eur: Decimal = Decimal(0)


@dataclass
class Figures:
    totals: Totals
    tables: list[Table]
    # For the charts: name -> {label: value}
    series: dict[str, dict[str, float]] = field(default_factory=dict)
    # Requests per time bucket and category: (bucket start, {category: count})
    timeline: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    bucket_seconds: int = 3600


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) and value else UNKNOWN


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _eur(value: Any) -> Decimal:
    if not isinstance(value, str):
        return Decimal(0)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() and amount >= 0 else Decimal(0)


def _attempts(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    attempts = record.get("attempts")
    if not isinstance(attempts, list):
        return []
    return [a for a in attempts if isinstance(a, dict)]


def _contacted(attempts: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [a for a in attempts if not str(a.get("outcome", "")).startswith("skipped")]


def _time(record: Mapping[str, Any]) -> float | None:
    value = record.get("time")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def when(seconds: float | None) -> str:
    if seconds is None:
        return UNKNOWN
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rule(record: Mapping[str, Any]) -> ResidencyRule | None:
    """The residency rule the record says applied; None when it cannot be read."""
    residency = record.get("residency")
    if not isinstance(residency, dict):
        return None
    locations, jurisdictions = residency.get("locations"), residency.get("jurisdictions")
    for value in (locations, jurisdictions):
        if value is not None and not (
            isinstance(value, list) and all(isinstance(c, str) for c in value)
        ):
            return None
    try:
        return ResidencyRule.parse(locations, jurisdictions)
    except UnknownRegionError:
        return None


def _rule_text(rule: ResidencyRule) -> str:
    parts = []
    if rule.locations is not None:
        parts.append(f"locations {describe(rule.locations)}")
    if rule.jurisdictions is not None:
        parts.append(f"jurisdictions {describe(rule.jurisdictions)}")
    return ", ".join(parts) or "unrestricted"


def build(records: Iterable[Mapping[str, Any]]) -> Figures:
    totals = Totals()
    groups: dict[str, dict[tuple[str, ...], _Sums]] = defaultdict(lambda: defaultdict(_Sums))
    outcomes: Counter[tuple[str, str, int]] = Counter()
    # (time, row): sorted by time at the end (records come in file order).
    refusals: list[tuple[float, list[Cell]]] = []
    failovers: list[tuple[float, list[Cell]]] = []
    outside: list[tuple[float, list[Cell]]] = []
    findings: Counter[tuple[str, str]] = Counter()
    policy_findings: Counter[tuple[str, str]] = Counter()
    times: list[tuple[float, str]] = []

    for record in records:
        t = _time(record)
        if t is not None:
            totals.first = t if totals.first is None else min(totals.first, t)
            totals.last = t if totals.last is None else max(totals.last, t)
        outcome = record.get("outcome") if isinstance(record.get("outcome"), str) else UNKNOWN
        status = _int(record.get("status"))
        cat = categories.category(str(outcome), status)
        if t is not None:
            times.append((t, cat))
        outcomes[(cat, str(outcome), status)] += 1
        served = cat == categories.SERVED
        usage = record.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        tokens_in, tokens_out = _int(usage.get("inputTokens")), _int(usage.get("outputTokens"))
        eur = _eur(record.get("costEur"))
        attempts = _attempts(record)
        contacted = _contacted(attempts)
        answered = next((a for a in reversed(contacted) if a.get("outcome") == "ok"), None)
        namespace, route = _text(record, "namespace"), _text(record, "route")
        workload = _text(record, "serviceAccount")
        provider = _text(answered, "provider") if answered else NOT_SERVED
        location = _text(answered, "location") if answered else NOT_SERVED
        jurisdiction = _text(answered, "jurisdiction") if answered else NOT_SERVED

        totals.requests += 1
        totals.served += served
        totals.refused += categories.is_refusal(cat)
        totals.failed += not served and not categories.is_refusal(cat)
        totals.input_tokens += tokens_in
        totals.output_tokens += tokens_out
        totals.eur += eur
        for table, key in (
            ("namespace", (namespace,)),
            ("workload", (namespace, workload)),
            ("route", (namespace, route)),
            ("provider", (provider,)),
            ("location", (location,)),
            ("jurisdiction", (jurisdiction,)),
        ):
            sums = groups[table][key]
            sums.requests += 1
            sums.served += served
            sums.input_tokens += tokens_in
            sums.output_tokens += tokens_out
            sums.eur += eur
        for attempt in contacted:
            sums = groups["provider"][(_text(attempt, "provider"),)]
            sums.attempts += 1
            sums.failed_attempts += attempt.get("outcome") != "ok"

        request_id = _text(record, "requestId")
        if not served:
            detail = "; ".join(
                f"{_text(a, 'provider')}: {_text(a, 'outcome')}"
                + (f" {a['status']}" if type(a.get("status")) is int else "")
                for a in attempts
            )
            row: list[Cell] = [
                when(t),
                namespace,
                workload,
                route,
                cat,
                str(outcome),
                status,
                detail,
                request_id,
            ]
            refusals.append((t or 0.0, row))
        if len(contacted) > 1:
            totals.failovers += 1
            path = " → ".join(
                f"{_text(a, 'provider')} ({_text(a, 'outcome')}"
                + (f" {a['status']}" if type(a.get("status")) is int else "")
                + ")"
                for a in contacted
            )
            failovers.append(
                (t or 0.0, [when(t), namespace, workload, route, path, str(outcome), request_id])
            )
        rule = _rule(record)
        if rule is None:
            totals.unreadable_rules += 1
        else:
            for attempt in contacted:
                loc = attempt.get("location") if isinstance(attempt.get("location"), str) else None
                jur = attempt.get("jurisdiction")
                jur = jur if isinstance(jur, str) else None
                why = rule.violation(loc, jur)
                if why is not None:
                    totals.outside_residency += 1
                    violation: list[Cell] = [
                        when(t),
                        namespace,
                        workload,
                        route,
                        _text(attempt, "provider"),
                        loc or UNKNOWN,
                        jur or UNKNOWN,
                        _text(attempt, "outcome"),
                        _rule_text(rule),
                        f"the provider {why}",
                        request_id,
                    ]
                    outside.append((t or 0.0, violation))
        _count_findings(record, findings, policy_findings)

    figures = Figures(totals, [])
    figures.tables = [
        _outside_table(_by_time(outside)),
        *_group_tables(groups),
        _outcome_table(outcomes),
        Table(
            "refusals",
            "Every request refused or not answered",
            [
                "time (UTC)",
                "namespace",
                "workload",
                "route",
                "category",
                "outcome",
                "status",
                "attempts",
                "request id",
            ],
            _by_time(refusals),
        ),
        Table(
            "failovers",
            "Every failover (requests that tried more than one provider)",
            ["time (UTC)", "namespace", "workload", "route", "attempts", "outcome", "request id"],
            _by_time(failovers),
        ),
        Table(
            "data_protection",
            "Data-protection findings (counts, never values)",
            ["category", "action", "findings"],
            [[c, a, n] for (c, a), n in sorted(findings.items())],
            note="" if findings else "No record of this trail carries data-protection findings.",
        ),
        Table(
            "policy_findings",
            "Audit-mode policy findings (what an Enforce policy would have refused)",
            ["policy", "finding", "requests"],
            [[p, r, n] for (p, r), n in sorted(policy_findings.items())],
            note="" if policy_findings else "No record of this trail carries policy findings.",
        ),
    ]
    figures.series = {
        "eur_by_namespace": {k[0]: float(s.eur) for k, s in groups["namespace"].items()},
        "requests_by_provider": {k[0]: s.requests for k, s in groups["provider"].items()},
        "requests_by_jurisdiction": {k[0]: s.requests for k, s in groups["jurisdiction"].items()},
        "requests_by_location": {k[0]: s.requests for k, s in groups["location"].items()},
        "tokens_by_route": {
            "/".join(k): s.input_tokens + s.output_tokens for k, s in groups["route"].items()
        },
        "requests_by_outcome": dict(
            Counter({outcome: n for (_, outcome, _), n in outcomes.items()})
        ),
    }
    figures.bucket_seconds, figures.timeline = _timeline(times)
    return figures


def _by_time(rows: list[tuple[float, list[Cell]]]) -> list[list[Cell]]:
    return [row for _, row in sorted(rows, key=lambda tr: tr[0])]


_GROUPS = {
    "namespace": ("Per namespace", ["namespace"]),
    "workload": ("Per workload (service account)", ["namespace", "service account"]),
    "route": ("Per route", ["namespace", "route"]),
    "provider": ("Per provider (requests: answered by it)", ["provider"]),
    "location": ("Per processing location (where the answering provider runs)", ["location"]),
    "jurisdiction": (
        "Per jurisdiction (legal home of the answering provider)",
        ["jurisdiction"],
    ),
}


def _group_tables(groups: Mapping[str, Mapping[tuple[str, ...], _Sums]]) -> list[Table]:
    tables = []
    for key, (title, columns) in _GROUPS.items():
        rows: list[list[Cell]] = []
        biggest_first = sorted(
            groups.get(key, {}).items(), key=lambda kv: (-kv[1].eur, -kv[1].requests, kv[0])
        )
        for names, s in biggest_first:
            extra: list[Cell] = [s.attempts, s.failed_attempts] if key == "provider" else []
            rows.append(
                [*names, s.requests, s.served, *extra, s.input_tokens, s.output_tokens, s.eur]
            )
        extra_columns = ["attempts", "failed attempts"] if key == "provider" else []
        tables.append(
            Table(
                f"by_{key}",
                title,
                [
                    *columns,
                    "requests",
                    "served",
                    *extra_columns,
                    "input tokens",
                    "output tokens",
                    "EUR",
                ],
                rows,
            )
        )
    return tables


def _outcome_table(outcomes: Counter[tuple[str, str, int]]) -> Table:
    return Table(
        "outcomes",
        "Requests by outcome",
        ["category", "outcome", "status", "requests"],
        [[c, o, s, n] for (c, o, s), n in sorted(outcomes.items())],
    )


def _outside_table(rows: list[list[Cell]]) -> Table:
    return Table(
        "outside_residency",
        "Processed outside the route's residency",
        [
            "time (UTC)",
            "namespace",
            "workload",
            "route",
            "provider",
            "location",
            "jurisdiction",
            "attempt outcome",
            "rule applied",
            "violation",
            "request id",
        ],
        rows,
        note=""
        if rows
        else "None: every provider contacted complied with the residency rule of its request.",
        alarm=bool(rows),
    )


def _count_findings(
    record: Mapping[str, Any],
    findings: Counter[tuple[str, str]],
    policy_findings: Counter[tuple[str, str]],
) -> None:
    """Data-protection counts (``{"email": {"redact": 2}}``) and Audit-mode policy findings
    (``[{"policy": ..., "reason": ...}]``, on the record or its attempts), if present."""
    protection = record.get("dataProtection")
    if isinstance(protection, dict):
        for category, actions in protection.items():
            if isinstance(actions, dict):
                for action, n in actions.items():
                    if type(n) is int and n > 0:
                        findings[(str(category), str(action))] += n
    seen: set[tuple[str, str]] = set()
    for holder in (record, *_attempts(record)):
        items = holder.get("policyFindings")
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("policy"), str):
                seen.add((item["policy"], str(item.get("reason", ""))))
    for key in seen:
        policy_findings[key] += 1


BUCKETS = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60


def _timeline(times: list[tuple[float, str]]) -> tuple[int, list[tuple[float, dict[str, int]]]]:
    """Requests per time bucket: the shortest bucket (a second to a week) that leaves at most
    :data:`MAX_BUCKETS`; every bucket from the first to the last, empty ones included."""
    if not times:
        return 3600, []
    first, last = min(t for t, _ in times), max(t for t, _ in times)
    bucket = next(
        (b for b in BUCKETS if (last - first) / b < MAX_BUCKETS),
        int((last - first) // MAX_BUCKETS) + 1,
    )
    counts: dict[float, Counter[str]] = defaultdict(Counter)
    for t, cat in times:
        counts[t - t % bucket][cat] += 1
    start, end = first - first % bucket, last - last % bucket
    steps = int((end - start) // bucket) + 1
    return bucket, [(start + i * bucket, dict(counts[start + i * bucket])) for i in range(steps)]
