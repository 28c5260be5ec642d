"""Memory growth over the long round: from the first round to the last, never from idle."""

from __future__ import annotations

from aiguillage.devtools.bench.memory import growth


def _points(*rss: float) -> list[dict[str, float]]:
    return [{"requests": 1000 * (i + 1), "rss_mb": v} for i, v in enumerate(rss)]


def test_growth_counts_from_the_first_round_to_the_last() -> None:
    result = growth(_points(50.0, 52.0, 51.0, 55.0))
    assert result["growth_mb"] == 5.0
    assert result["growth_ratio"] == 0.1
    assert result["max_step_mb"] == 4.0  # 51 -> 55
    assert (result["baseline_requests"], result["final_requests"]) == (1000, 4000)


def test_memory_given_back_is_negative_growth() -> None:
    result = growth(_points(60.0, 54.0))
    assert result["growth_mb"] == -6.0
    assert result["growth_ratio"] == -0.1


def test_one_round_says_nothing_about_growth() -> None:
    assert growth(_points(50.0)) == {"growth_mb": None, "growth_ratio": None}
