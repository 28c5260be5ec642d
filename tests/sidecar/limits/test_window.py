"""The sliding window of rate limits: how much of the previous minute counts, when it frees."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.limits import window

MINUTE_START = 1_800_000_000 // 60 * 60


@pytest.mark.parametrize(("second", "weight"), [(0, 1.0), (15, 0.75), (30, 0.5), (59, 1 / 60)])
def test_the_previous_minute_weighs_what_is_left_of_it(second: int, weight: float) -> None:
    assert window.weight(MINUTE_START + second) == pytest.approx(weight)


def test_a_request_fits_while_the_weighted_level_leaves_room() -> None:
    half = window.weight(MINUTE_START + 30)
    assert window.fits(10, 4, half, 1, 10)  # 5 + 4 + 1
    assert not window.fits(10, 5, half, 1, 10)  # 5 + 5 + 1


def test_wait_is_zero_when_it_fits_now() -> None:
    assert window.wait(0, 3, MINUTE_START + 10, 1, 10) == 0


def test_wait_until_enough_of_the_previous_minute_has_slid_out() -> None:
    # 30 s in: 10 × 0.5 + 5 + 1 > 10; at 36 s in 10 × 0.4 + 5 + 1 = 10 fits.
    assert window.wait(10, 5, MINUTE_START + 30, 1, 10) == pytest.approx(6)


def test_wait_into_the_next_minute_when_this_one_is_full() -> None:
    # This minute holds 10 of 10: the next minute starts in 50 s, and then these 10 must
    # weigh at most 9, which they do 6 s into it.
    assert window.wait(0, 10, MINUTE_START + 10, 1, 10) == pytest.approx(56)


def test_a_request_larger_than_the_limit_never_fits() -> None:
    assert window.wait(0, 0, MINUTE_START, 11, 10) is None
