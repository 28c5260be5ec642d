"""The worst case a request may cost, reserved against its budgets before it is sent.

Reservation must never be below what a request really costs, or concurrent requests could
overspend a budget. The two halves are bounded as follows:

- **Input tokens** are estimated as the request body's size in bytes divided by
  :data:`BYTES_PER_TOKEN` (2). Tokenisers of current models average about 4 bytes of English
  per token, and the body also holds JSON keys, roles and punctuation, so the estimate is
  usually 2-3 times the real count; text denser than 2 bytes per token (long runs of digits
  or rare symbols) can exceed it. ``tests/sidecar/limits/test_estimate.py`` checks it against
  the simulated providers' token counts.
- **Output tokens** are what the request allows: ``max_completion_tokens`` or
  ``max_tokens`` (chat; legacy completions default to 16 as OpenAI's API does),
  ``max_output_tokens`` (Responses), ``max_tokens`` (Anthropic Messages), times the number
  of choices asked (``n``, ``best_of``). A request that states no maximum reserves
  :data:`UNSTATED_OUTPUT_TOKENS` (4,096): a provider may answer more, and the excess is part
  of the overspend bound stated in the README. Embeddings produce no output tokens.

Prices are the highest input and output prices among the route's targets (the request may
fail over to any of them); a target without pricing costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from aiguillage.sidecar.adapters.base import MAX_TOKENS, Call, Operation
from aiguillage.sidecar.config import Route
from aiguillage.sidecar.limits import keys

BYTES_PER_TOKEN = 2
UNSTATED_OUTPUT_TOKENS = 4096
# OpenAI's legacy completions API answers 16 tokens when max_tokens is not given.
LEGACY_COMPLETION_TOKENS = 16
MILLION = Decimal(1_000_000)

_OUTPUT_FIELDS: dict[Operation, tuple[str, ...]] = {
    Operation.CHAT: ("max_completion_tokens", "max_tokens"),
    Operation.COMPLETIONS: ("max_tokens",),
    Operation.RESPONSES: ("max_output_tokens",),
    Operation.MESSAGES: ("max_tokens",),
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may use at most, before it is sent."""

    input_tokens: int
    output_tokens: int
    # The worst-case cost in nano-euros at the route's most expensive prices.
    cost_nano: int
    input_price: Decimal  # EUR per million tokens used for the worst case
    output_price: Decimal

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _count(value: Any) -> int | None:
    """A token count a client gave (capped at MAX_TOKENS), or None when it is not one."""
    if type(value) is int and value >= 0:
        return min(value, MAX_TOKENS)
    return None


def output_tokens(call: Call) -> int:
    """The most output tokens ``call`` allows (see the module docstring)."""
    body = call.body
    fields = _OUTPUT_FIELDS.get(call.operation)
    if fields is None:
        return 0  # embeddings (and token counting) produce no output
    stated = next((n for f in fields if (n := _count(body.get(f))) is not None), None)
    if stated is None:
        stated = (
            LEGACY_COMPLETION_TOKENS
            if call.operation is Operation.COMPLETIONS
            else UNSTATED_OUTPUT_TOKENS
        )
    choices = max(_count(body.get("n")) or 1, _count(body.get("best_of")) or 1)
    return stated * choices


def input_tokens(body_bytes: int) -> int:
    return -(-body_bytes // BYTES_PER_TOKEN)


def worst_case(call: Call, route: Route) -> Estimate:
    """The most ``call`` may cost on ``route``."""
    tokens_in = input_tokens(len(orjson.dumps(call.body)))
    tokens_out = output_tokens(call)
    prices = [t.pricing for t in route.targets if t.pricing is not None]
    price_in = max((p.input_per_million for p in prices), default=Decimal(0))
    price_out = max((p.output_per_million for p in prices), default=Decimal(0))
    cost = (tokens_in * price_in + tokens_out * price_out) / MILLION
    return Estimate(tokens_in, tokens_out, keys.to_nano(cost), price_in, price_out)
