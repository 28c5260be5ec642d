"""The counter key layout shared by sidecars (writers) and the operator (reader)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from aiguillage.sidecar.config import LimitScope
from aiguillage.sidecar.limits import keys

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (LimitScope.NAMESPACE, "aig:budget:namespace:support:2025-03"),
        (LimitScope.ROUTE, "aig:budget:route:support/chat:2025-03"),
        (LimitScope.WORKLOAD, "aig:budget:workload:support/billing-bot:2025-03"),
    ],
)
def test_budget_keys_name_the_scope_member_and_month(scope: LimitScope, expected: str) -> None:
    ident = keys.scope_id(scope, "support", "chat", "billing-bot")
    assert keys.budget_key("aig", scope, ident, "2025-03") == expected


def test_spend_keys_are_the_namespace_and_route_budget_keys() -> None:
    assert keys.spend_keys("aig", "support", "chat", "2025-03") == (
        "aig:budget:namespace:support:2025-03",
        "aig:budget:route:support/chat:2025-03",
    )


def test_months_follow_the_configured_time_zone() -> None:
    # 23:30 UTC on 31 March is already 1 April in Paris (UTC+2 in summer time).
    instant = datetime(2025, 3, 31, 23, 30, tzinfo=UTC)
    assert keys.month(instant, PARIS) == "2025-04"
    assert keys.month(instant, ZoneInfo("America/New_York")) == "2025-03"


@pytest.mark.parametrize(
    ("instant", "expires"),
    [
        (datetime(2025, 3, 15, 12, tzinfo=UTC), datetime(2025, 4, 8, tzinfo=PARIS)),
        (datetime(2025, 12, 31, 22, 59, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=PARIS)),
        (datetime(2025, 12, 31, 23, 1, tzinfo=UTC), datetime(2026, 2, 8, tzinfo=PARIS)),
    ],
)
def test_budget_keys_expire_a_week_after_their_month(instant: datetime, expires: datetime) -> None:
    assert keys.budget_expiry(instant, PARIS) == expires


def test_rate_keys_name_the_kind_and_minute() -> None:
    m = keys.minute(datetime(2025, 3, 1, 12, 0, 59, tzinfo=UTC).timestamp())
    assert m == keys.minute(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp())
    assert keys.rate_key("aig", "tokens", LimitScope.ROUTE, "ns/r", m) == (
        f"aig:rate:tokens:route:ns/r:{m}"
    )


def test_money_round_trips_in_nano_euros_rounded_up() -> None:
    assert keys.to_nano(Decimal("12.34")) == 12_340_000_000
    assert keys.to_nano(Decimal("0.0000000001")) == 1  # never under-counted
    assert keys.from_nano(b"12340000000") == Decimal("12.34")
    assert keys.from_nano("1") == Decimal("0.000000001")
    assert keys.from_nano(None) == Decimal(0)
