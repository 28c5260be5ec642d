"""The detectors on the labelled corpus: the thresholds the project promises."""

from __future__ import annotations

import pytest

from aiguillage.devtools.privacy_eval.corpus import build
from aiguillage.devtools.privacy_eval.metrics import Evaluation, evaluate, everything

SEED = 12


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    with_data, clean = build(SEED, personal_texts=1200, clean_texts=1000)
    return evaluate(everything(), with_data, clean)


def test_structured_identifiers_with_check_digits_are_found(evaluation: Evaluation) -> None:
    assert evaluation.structured_labels > 500
    assert evaluation.structured_recall >= 0.99


def test_clean_texts_full_of_look_alikes_are_rarely_flagged(evaluation: Evaluation) -> None:
    assert evaluation.clean_texts == 1000
    assert evaluation.false_positive_rate <= 0.01


def test_every_category_is_measured_and_precise(evaluation: Evaluation) -> None:
    for category in ("email", "phone", "iban", "vat", "national_id", "payment_card", "ip_address"):
        assert evaluation.labels[category] > 50, category
        assert evaluation.precision(category) >= 0.95, category
    assert evaluation.recall("email") == 1.0
    assert evaluation.recall("ip_address") >= 0.99


def test_the_corpus_is_the_same_for_the_same_seed() -> None:
    a = build(SEED, 30, 30)
    b = build(SEED, 30, 30)
    assert a == b
    assert build(SEED + 1, 30, 30) != a
