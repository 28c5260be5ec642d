"""Frontends: the client-facing API shapes of the sidecar.

The sidecar's canonical client API is OpenAI's chat completions: handlers, adapters and
error bodies speak it, and an OpenAI request to an OpenAI-speaking provider does no extra
work. A frontend lets clients of another API use the same routes: :mod:`.anthropic` serves
the Anthropic Messages API (``POST /v1/messages``), :mod:`.count_tokens` its token counting
(``POST /v1/messages/count_tokens``) and :mod:`.responses` OpenAI's Responses API
(``POST /v1/responses``) on targets that lack it. See :mod:`.base` for how a frontend shapes
the sidecar's own errors and serves targets whose adapter lacks the client's operation.
"""

from __future__ import annotations

from aiguillage.sidecar.adapters.base import Operation
from aiguillage.sidecar.frontends.anthropic import ANTHROPIC
from aiguillage.sidecar.frontends.base import OPENAI, Frontend
from aiguillage.sidecar.frontends.count_tokens import COUNT_TOKENS
from aiguillage.sidecar.frontends.responses import RESPONSES

# Client-facing operation -> its frontend; operations not listed are OpenAI's.
FRONTENDS: dict[Operation, Frontend] = {
    Operation.MESSAGES: ANTHROPIC,
    Operation.COUNT_TOKENS: COUNT_TOKENS,
    Operation.RESPONSES: RESPONSES,
}


def frontend_for(operation: Operation) -> Frontend:
    return FRONTENDS.get(operation, OPENAI)


__all__ = ["FRONTENDS", "OPENAI", "Frontend", "frontend_for"]
