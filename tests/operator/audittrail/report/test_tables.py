"""``tables.py``: the figures a data-protection officer reads, from records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from aiguillage.operator.audittrail.report.tables import NOT_SERVED, Figures, Table, build
from aiguillage.sidecar.audit import AttemptRecord
from aiguillage.sidecar.residency import EU
from tests.operator.audittrail._trails import request

EU_RULE: dict[str, list[str] | None] = {"locations": sorted(EU), "jurisdictions": sorted(EU)}


def as_dicts(*records: Any) -> list[dict[str, Any]]:
    return [orjson.loads(r.to_json()) for r in records]


def table(figures: Figures, key: str) -> Table:
    return next(t for t in figures.tables if t.key == key)


def rows(figures: Figures, key: str) -> list[list[Any]]:
    return table(figures, key).rows


def failover(*outcomes: tuple[str, str, str, str, int | None]) -> list[AttemptRecord]:
    return [
        AttemptRecord(p, "m", loc, jur, out, 10.0, status) for p, loc, jur, out, status in outcomes
    ]


def test_requests_tokens_and_euros_per_namespace_workload_and_route() -> None:
    figures = build(
        as_dicts(
            request("1", "team-a", service_account="bot", route="chat", tokens=(10, 5), cost="0.5"),
            request("2", "team-a", service_account="bot", route="chat", tokens=(1, 1), cost="0.25"),
            request("3", "team-a", service_account="cron", route="sum", tokens=(7, 3), cost="1"),
            request("4", "team-b", service_account="bot", route="chat", tokens=(2, 2), cost=None),
        )
    )
    assert rows(figures, "by_namespace") == [
        ["team-a", 3, 3, 18, 9, Decimal("1.75")],
        ["team-b", 1, 1, 2, 2, Decimal(0)],
    ]
    assert rows(figures, "by_workload") == [
        ["team-a", "cron", 1, 1, 7, 3, Decimal("1")],
        ["team-a", "bot", 2, 2, 11, 6, Decimal("0.75")],
        ["team-b", "bot", 1, 1, 2, 2, Decimal(0)],
    ]
    assert [r[:3] for r in rows(figures, "by_route")] == [
        ["team-a", "sum", 1], ["team-a", "chat", 2], ["team-b", "chat", 1],
    ]  # fmt: skip
    t = figures.totals
    assert (t.requests, t.served, t.input_tokens, t.output_tokens, t.eur) == (
        4, 4, 20, 11, Decimal("1.75"),
    )  # fmt: skip


def test_provider_location_and_jurisdiction_are_those_of_the_answering_attempt() -> None:
    figures = build(
        as_dicts(
            request(
                "1",
                attempts=failover(
                    ("mistral-eu", "FR", "FR", "http_error", 503),
                    ("ionos-de", "DE", "DE", "ok", None),
                ),
                cost="0.2",
            ),
            request(
                "2",
                outcome="all_targets_failed",
                status=502,
                attempts=failover(("mistral-eu", "FR", "FR", "timeout", None)),
                tokens=(0, 0),
                cost=None,
            ),
        )
    )
    assert rows(figures, "by_provider") == [
        ["ionos-de", 1, 1, 1, 0, 10, 20, Decimal("0.2")],
        [NOT_SERVED, 1, 0, 0, 0, 0, 0, Decimal(0)],
        ["mistral-eu", 0, 0, 2, 2, 0, 0, Decimal(0)],
    ]
    assert [r[0] for r in rows(figures, "by_jurisdiction")] == ["DE", NOT_SERVED]
    (fo,) = rows(figures, "failovers")
    assert fo[4] == "mistral-eu (http_error 503) → ionos-de (ok)"
    (refused,) = rows(figures, "refusals")
    assert refused[4:8] == ["providers failed", "all_targets_failed", 502, "mistral-eu: timeout"]
    assert (figures.totals.failovers, figures.totals.failed) == (1, 1)


def test_every_refusal_is_listed_with_its_category() -> None:
    figures = build(
        as_dicts(
            request("1", outcome="no_compliant_target", status=503, attempts=failover(
                ("openai-us", "US", "US", "skipped_residency", None))),
            request("2", outcome="budget_exceeded", status=429, attempts=[]),
            request("3", outcome="a_new_outcome", status=418, attempts=[]),
        )
    )  # fmt: skip
    assert [r[4:6] for r in rows(figures, "refusals")] == [
        ["refused: residency", "no_compliant_target"],
        ["refused: limit or budget", "budget_exceeded"],
        ["other", "a_new_outcome"],
    ]
    assert figures.totals.refused == 2


def test_an_attempt_outside_the_request_rule_is_found_and_flagged() -> None:
    """Even an attempt that failed sent the prompt: it is checked too."""
    figures = build(
        as_dicts(
            request("fine", residency=EU_RULE),
            request(
                "breach",
                residency=EU_RULE,
                route="sovereign",
                attempts=failover(
                    ("openai-us", "US", "US", "http_error", 500),
                    ("mistral-eu", "FR", "FR", "ok", None),
                ),
            ),
            request(  # the location complies, the jurisdiction does not
                "cloud-act", residency=EU_RULE, attempts=failover(("azure", "FR", "US", "ok", None))
            ),
            request("unrestricted", attempts=failover(("openai-us", "US", "US", "ok", None))),
        )
    )
    outside = table(figures, "outside_residency")
    assert outside.alarm
    assert [(r[4], r[5], r[6], r[10]) for r in outside.rows] == [
        ("openai-us", "US", "US", "breach"),
        ("azure", "FR", "US", "cloud-act"),
    ]
    assert outside.rows[0][8] == "locations [EU], jurisdictions [EU]"
    assert outside.rows[0][9] == "the provider is located in US, outside locations [EU]"
    assert figures.totals.outside_residency == 2


def test_no_violation_says_so() -> None:
    outside = table(build(as_dicts(request("1", residency=EU_RULE))), "outside_residency")
    assert (outside.rows, outside.alarm) == ([], False)
    assert outside.note.startswith("None: every provider contacted complied")


def test_malformed_records_are_counted_not_fatal() -> None:
    figures = build(
        [
            {"requestId": "x", "attempts": "no", "usage": [], "costEur": "NaN", "time": "soon"},
            {"requestId": "y", "attempts": [3, {"provider": 7}], "costEur": "-1",
             "residency": {"locations": ["Atlantis"]}, "status": "200", "outcome": None},
        ]
    )  # fmt: skip
    assert figures.totals.requests == 2
    assert figures.totals.eur == 0
    assert figures.totals.unreadable_rules == 2


def test_data_protection_and_policy_findings_are_summed() -> None:
    records = as_dicts(request("1"), request("2"))
    records[0]["dataProtection"] = {"email": {"redact": 2}, "iban": {"block": 1}}
    records[1]["dataProtection"] = {"email": {"redact": 1}, "bad": "shape"}
    records[1]["attempts"][0]["policyFindings"] = [{"policy": "eu-only", "reason": "US"}]
    figures = build(records)
    assert rows(figures, "data_protection") == [["email", "redact", 3], ["iban", "block", 1]]
    assert rows(figures, "policy_findings") == [["eu-only", "US", 1]]


def test_the_timeline_has_every_bucket_from_first_to_last() -> None:
    start = 1_767_225_600.0
    figures = build(
        as_dicts(
            request("1", time=start),
            request("2", time=start + 125, outcome="no_compliant_target", status=503),
        )
    )
    assert figures.bucket_seconds == 5
    assert len(figures.timeline) == 26
    assert figures.timeline[0] == (start, {"served": 1})
    assert figures.timeline[-1] == (start + 125, {"refused: residency": 1})
    assert all(counts == {} for _, counts in figures.timeline[1:-1])
