"""Azure OpenAI: the OpenAI wire format on deployment URLs, with an ``api-key`` header.

Bodies and streams are OpenAI's (handled by :class:`~.openai.OpenAIAdapter`); only the
URL and auth differ. A route target's ``model`` is the **deployment** name, which goes in
the path: ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``
(also ``/embeddings`` and ``/completions``). The api-version comes from
``options.apiVersion`` (default: a GA inference version; see :mod:`.options`).

Azure specifics the rest of the sidecar already handles: a 429 carries ``retry-after-ms``
(read by :func:`~aiguillage.sidecar.upstream.retry_after`); a prompt refused by the content
filter is a 400 with ``code: content_filter``, relayed to the client as is (a 400 never
fails over: the next provider would get the same prompt); a filtered completion is a 200
with ``finish_reason: content_filter``, passed through.

Answers are made OpenAI-shaped here, because strict clients choke on Azure's additions: a
stream's first chunk carries only ``prompt_filter_results`` (empty ``id``, ``model`` and
``object``, ``created: 0``, no choices), which is dropped, and the ``prompt_filter_results``
and per-choice ``content_filter_results`` annotations are removed from chunks and whole
answers (a filtered answer still says so in its ``finish_reason``). Chunks without them pass
as they came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from urllib.parse import quote

import orjson

from aiguillage.sidecar.adapters.base import (
    Call,
    Operation,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from aiguillage.sidecar.adapters.openai import DONE, PATHS, OpenAIAdapter, OpenAIStream
from aiguillage.sidecar.adapters.options import AzureOpenAIOptions, parse_options
from aiguillage.sidecar.config import Provider

# Azure's content-filter annotations: on an answer (or chunk), and on each of its choices.
_PROMPT_FILTER = b"prompt_filter_results"
_CHOICE_FILTER = b"content_filter_results"


def without_filter_results(raw: bytes) -> bytes | None:
    """``raw`` without Azure's content-filter annotations; None for a filter-only chunk.

    Bodies that carry none are returned as they are, without being re-serialised.
    """
    if _PROMPT_FILTER not in raw and _CHOICE_FILTER not in raw:
        return raw
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # the OpenAI parsing after this names the problem
    if not isinstance(body, dict):
        return raw
    had_prompt_filter = body.pop("prompt_filter_results", None) is not None
    choices = body.get("choices")
    if had_prompt_filter and choices == [] and not body.get("usage"):
        return None  # the stream's leading chunk: nothing OpenAI would send
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            choice.pop("content_filter_results", None)
    return orjson.dumps(body)


class AzureOpenAIAdapter(OpenAIAdapter):
    api = "azure-openai"
    # The Responses API lives elsewhere on Azure (/openai/v1/responses): not served here.
    operations = frozenset({Operation.CHAT, Operation.EMBEDDINGS, Operation.COMPLETIONS})

    def __init__(self, provider: Provider, credential: str | None) -> None:
        super().__init__(provider, credential)
        base = provider.endpoint.rstrip("/").removesuffix("/openai")
        self._deployments = base + "/openai/deployments/"
        options: AzureOpenAIOptions = parse_options(self.api, provider.endpoint, provider.options)
        self._query = "?api-version=" + quote(options.api_version, safe="")
        self._headers = {"content-type": "application/json"}
        if credential:
            self._headers["api-key"] = credential

    def build(self, call: Call, model: str) -> UpstreamRequest:
        request = super().build(call, model)
        url = self._deployments + quote(model, safe="") + PATHS[call.operation] + self._query
        return dataclasses.replace(request, url=url)

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        return super().read_response(call, without_filter_results(raw) or raw, model)

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        return AzureStream(call.client_wants_usage)


class AzureStream(OpenAIStream):
    """OpenAI chunks from Azure, without its content-filter chunk and annotations."""

    # Every chunk is cleaned first: one at a time, through feed().
    feed_all = StreamTranslator.feed_all

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if data == DONE:
            return super().feed(event, data)
        cleaned = without_filter_results(data)
        return () if cleaned is None else super().feed(event, cleaned)
