"""Vertex AI (``{location}-aiplatform.googleapis.com``): Google's ``generateContent`` format
(translated in :mod:`.google_genai`) on a project's regional endpoint.

URLs are ``{endpoint}/v1/projects/{project}/locations/{location}/publishers/google/models/
{model}:generateContent`` (``:streamGenerateContent?alt=sse`` for streams), where the
``endpoint`` is the regional host, e.g. ``https://europe-west4-aiplatform.googleapis.com``
(``https://aiplatform.googleapis.com`` is the ``global`` location, ``aiplatform.eu.rep.
googleapis.com`` the ``eu`` multi-region). Options (validated in :mod:`.options`):
``project`` (required), ``location`` (else read from the host; both given must agree,
because the location decides where data is processed), ``apiVersion`` (default ``v1``;
ignored when the endpoint has a path).

Auth: the credential file holds an OAuth 2 access token, sent as ``Authorization: Bearer``.
Minting tokens from a service-account key (JWT exchange, refresh before expiry) is out of
scope here: something else must keep the file fresh (tokens live about an hour); the
sidecar re-reads credentials when the file changes.

Embeddings use ``:predict`` (``instances[].content``), whose answer reports token counts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from aiguillage.sidecar.adapters.base import (
    Call,
    UpstreamRequest,
    Usage,
    token_count,
    usage_object,
)
from aiguillage.sidecar.adapters.google_genai import GoogleGenAIAdapter
from aiguillage.sidecar.adapters.openai_chat import (
    dimensions,
    embedding_inputs,
    embeddings_body,
    load_object,
)
from aiguillage.sidecar.adapters.options import VertexAIOptions, parse_options
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer


class VertexAIAdapter(GoogleGenAIAdapter):
    api = "vertex-ai"

    def __init__(self, provider: Provider, credential: str | None) -> None:
        super().__init__(provider, credential)
        options: VertexAIOptions = parse_options(self.api, provider.endpoint, provider.options)
        parts = urlsplit(provider.endpoint.rstrip("/"))
        location = options.location_at(parts.hostname or "")
        assert location is not None  # parse_options refuses a provider without one
        project = options.project
        path = parts.path or "/" + options.api_version
        self.location = location
        self._base = (
            f"{parts.scheme}://{parts.netloc}{path}/projects/{quote(project, safe='')}"
            f"/locations/{quote(location, safe='')}/publishers/google/models/"
        )
        self._headers = {"content-type": "application/json"}
        if credential:
            self._headers["authorization"] = f"Bearer {credential}"

    def model_url(self, model: str) -> str:
        return self._base + quote(model, safe="")

    def headers(self) -> dict[str, str]:
        return self._headers

    def embeddings_request(self, call: Call, model: str) -> UpstreamRequest:
        body: dict[str, Any] = {
            "instances": [{"content": text} for text in embedding_inputs(call.body)]
        }
        dims = dimensions(call.body)
        if dims is not None:
            body["parameters"] = {"outputDimensionality": dims}
        return UpstreamRequest(
            self.model_url(model) + ":predict", self._headers, orjson.dumps(body)
        )

    def embeddings_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        body = load_object(raw, "predict answer")
        predictions = body.get("predictions")
        if not isinstance(predictions, list):
            raise MalformedAnswer("provider answered without predictions")
        vectors = []
        tokens = 0
        for item in predictions:
            embeddings = item.get("embeddings") if isinstance(item, dict) else None
            if not isinstance(embeddings, dict) or not isinstance(embeddings.get("values"), list):
                raise MalformedAnswer("provider answered a prediction without values")
            vectors.append(embeddings["values"])
            stats = usage_object(embeddings.get("statistics"), "statistics")
            if stats is not None:
                tokens += token_count(stats.get("token_count"), "token_count")
        usage = Usage(tokens, 0)
        return embeddings_body(call.body, model, vectors, usage), usage
