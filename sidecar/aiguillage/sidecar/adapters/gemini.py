"""Gemini API (``generativelanguage.googleapis.com``): Google's ``generateContent`` format
(translated in :mod:`.google_genai`) behind an API key in ``x-goog-api-key``.

The provider's ``endpoint`` is the versioned base, e.g.
``https://generativelanguage.googleapis.com/v1beta``; a bare host gets ``/v1beta``.
Embeddings go through ``:batchEmbedContents`` (one request for one or many inputs, as
Google's SDK does); that answer carries no token count, so embeddings account 0 tokens.
The Gemini API has no region choice: for residency use :mod:`.vertex_ai`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from aiguillage.sidecar.adapters.base import Call, UpstreamRequest, Usage
from aiguillage.sidecar.adapters.google_genai import GoogleGenAIAdapter
from aiguillage.sidecar.adapters.openai_chat import (
    dimensions,
    embedding_inputs,
    embeddings_body,
    load_object,
)
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer

DEFAULT_VERSION = "v1beta"


class GeminiAdapter(GoogleGenAIAdapter):
    api = "gemini"

    def __init__(self, provider: Provider, credential: str | None) -> None:
        super().__init__(provider, credential)
        base = provider.endpoint.rstrip("/")
        if not urlsplit(base).path:
            base += "/" + DEFAULT_VERSION
        self._base = base + "/models/"
        self._headers = {"content-type": "application/json"}
        if credential:
            self._headers["x-goog-api-key"] = credential

    def model_url(self, model: str) -> str:
        return self._base + quote(model.removeprefix("models/"), safe="")

    def headers(self) -> dict[str, str]:
        return self._headers

    def embeddings_request(self, call: Call, model: str) -> UpstreamRequest:
        name = "models/" + model.removeprefix("models/")
        dims = dimensions(call.body)
        requests = []
        for text in embedding_inputs(call.body):
            request: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if dims is not None:
                request["outputDimensionality"] = dims
            requests.append(request)
        return UpstreamRequest(
            self.model_url(model) + ":batchEmbedContents",
            self._headers,
            orjson.dumps({"requests": requests}),
        )

    def embeddings_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        body = load_object(raw, "batchEmbedContents answer")
        embeddings = body.get("embeddings")
        if not isinstance(embeddings, list):
            raise MalformedAnswer("provider answered without embeddings")
        vectors = []
        for item in embeddings:
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list):
                raise MalformedAnswer("provider answered an embedding without values")
            vectors.append(values)
        usage = Usage()
        return embeddings_body(call.body, model, vectors, usage), usage
