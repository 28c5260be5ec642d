"""Worst-case estimates: never below what the simulated providers count, caps per API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aiguillage.devtools.simulators.answers import count_words
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.config import Pricing, Route, Target
from aiguillage.sidecar.limits import estimate

PROMPTS: list[Any] = [
    "hi",
    "Summarise the following ticket in two sentences for the support team.",
    "Bonjour, pouvez-vous résumer ce document en français, s'il vous plaît ?",
    " ".join(["word"] * 2000),
    "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 50,  # one-letter words
    "東京で会議があります。" * 20,
]


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_input_estimate_is_never_below_the_simulators_count(prompt: str) -> None:
    bodies: list[tuple[Operation, dict[str, Any]]] = [
        (Operation.CHAT, {"model": "m", "messages": [{"role": "user", "content": prompt}]}),
        (
            Operation.MESSAGES,
            {
                "model": "m",
                "max_tokens": 10,
                "system": prompt,
                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            },
        ),
        (Operation.RESPONSES, {"model": "m", "instructions": prompt, "input": prompt}),
        (Operation.EMBEDDINGS, {"model": "m", "input": [prompt, prompt]}),
    ]
    for operation, body in bodies:
        est = estimate.worst_case(Call(operation, body, False), ROUTE)
        assert est.input_tokens >= count_words(body), operation


ROUTE = Route(
    name="chat",
    targets=(
        Target(provider="a", model="x", pricing=Pricing(input_per_million=1, output_per_million=2)),
        Target(provider="b", model="y", pricing=Pricing(input_per_million=3, output_per_million=1)),
        Target(provider="c", model="z"),  # unpriced
    ),
)


@pytest.mark.parametrize(
    ("operation", "body", "tokens"),
    [
        (Operation.CHAT, {"max_tokens": 100}, 100),
        (Operation.CHAT, {"max_completion_tokens": 50, "max_tokens": 100}, 50),
        (Operation.CHAT, {"max_tokens": 100, "n": 3}, 300),
        (Operation.CHAT, {}, estimate.UNSTATED_OUTPUT_TOKENS),
        (Operation.CHAT, {"max_tokens": "lots"}, estimate.UNSTATED_OUTPUT_TOKENS),
        (Operation.CHAT, {"max_tokens": 10**12}, 10**9),
        (Operation.COMPLETIONS, {}, 16),
        (Operation.COMPLETIONS, {"max_tokens": 20, "best_of": 4, "n": 2}, 80),
        (Operation.RESPONSES, {"max_output_tokens": 70}, 70),
        (Operation.MESSAGES, {"max_tokens": 1024}, 1024),
        (Operation.EMBEDDINGS, {"max_tokens": 1024}, 0),
    ],
)
def test_output_is_what_the_request_allows(
    operation: Operation, body: dict[str, Any], tokens: int
) -> None:
    assert estimate.output_tokens(Call(operation, body, False)) == tokens


def test_worst_case_cost_takes_the_highest_prices_of_the_route() -> None:
    body = {"model": "chat", "messages": [], "max_tokens": 1000}
    est = estimate.worst_case(Call(Operation.CHAT, body, False), ROUTE)
    assert (est.input_price, est.output_price) == (Decimal(3), Decimal(2))
    expected = (est.input_tokens * 3 + 1000 * 2) * 1000  # nano-euros (per million tokens)
    assert est.cost_nano == expected
