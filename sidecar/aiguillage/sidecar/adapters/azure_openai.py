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
with ``finish_reason: content_filter``, passed through; streams start with a chunk whose
``choices`` is empty (prompt filter results), passed through too.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from aiguillage.sidecar.adapters.base import Call, Operation, UpstreamRequest
from aiguillage.sidecar.adapters.openai import PATHS, OpenAIAdapter
from aiguillage.sidecar.adapters.options import AzureOpenAIOptions, parse_options
from aiguillage.sidecar.config import Provider


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
