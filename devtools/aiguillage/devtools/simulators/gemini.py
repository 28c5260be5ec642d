"""Simulated Google Gemini API and Vertex AI (``generateContent`` family).

Paths (``{target}`` is ``<model>:<method>``):

* Gemini API: ``POST /v1beta/models/{target}`` (and ``/v1/models/{target}``), key in the
  ``x-goog-api-key`` header (or the ``key`` query parameter). With a configured key, a request
  without one gets 403 ``PERMISSION_DENIED`` and a wrong one 400 ``INVALID_ARGUMENT`` with reason
  ``API_KEY_INVALID``, as the real API does (it never answers 401 for API keys).
* Vertex AI: ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{target}``
  (and ``/v1beta1/...``), ``Authorization: Bearer <token>``; 401 ``UNAUTHENTICATED`` otherwise.

Methods: ``generateContent`` (a ``GenerateContentResponse``: ``candidates[].content.parts``,
``finishReason``, ``usageMetadata``, ``modelVersion``, ``responseId``),
``streamGenerateContent`` (with ``alt=sse``: SSE events ``data: <GenerateContentResponse>``
separated by CRLF CRLF, every chunk with cumulative ``usageMetadata``, the last with
``finishReason``, no ``[DONE]``; without ``alt=sse``: one JSON array of the same objects),
``embedContent``, ``batchEmbedContents``, ``countTokens`` and Vertex's ``predict`` (embeddings).
Roles are ``user``/``model``; ``systemInstruction`` is separate. With ``tools``
(``functionDeclarations``) the answer is a ``functionCall`` part (forced by
``toolConfig.functionCallingConfig`` mode ``ANY`` + ``allowedFunctionNames``, else the first
declaration; mode ``NONE`` or a last turn carrying a ``functionResponse`` gives text), whose
``args`` fit the declaration's ``parametersJsonSchema`` (or ``parameters``).
``generationConfig.responseJsonSchema`` (or ``responseSchema``) gets a text answer that fits
it, ``responseMimeType: application/json`` alone one that fits a schema the prompt spells
out, else ``{"answer": ...}`` (see :mod:`.structured`).
``generationConfig.maxOutputTokens`` cuts a text answer (``finishReason: "MAX_TOKENS"``).

Errors: ``{"error": {"code", "message", "status"}}`` (``INVALID_ARGUMENT``,
``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``...). An in-stream error is a ``data: {"error": {...}}``
event (``UNAVAILABLE`` by default).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import orjson
from aiohttp import web

from . import structured
from .answers import Answer, count_words, embedding_vector
from .base import Call, Handler, Simulator
from .faults import ApiError, Fault

__all__ = ["GeminiSimulator"]

_STATUS: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES: Final = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_SEP: Final = b"\r\n\r\n"


def _status_name(status: int) -> str:
    return _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def _get(body: dict[str, Any], camel: str, snake: str) -> Any:
    """Proto-JSON accepts both ``lowerCamel`` and ``snake_case`` field names."""
    value = body.get(camel)
    return body.get(snake) if value is None else value


def _part_texts(content: Any) -> str:
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        raise ApiError(400, "* content: parts is not specified")
    return " ".join(str(p.get("text", "")) for p in content["parts"] if isinstance(p, dict))


class GeminiSimulator(Simulator):
    """Gemini API and Vertex AI ``generateContent`` wire format.

    :param models: when given, other models get 404 ``NOT_FOUND``.
    :param embedding_dims: embedding width unless the request gives ``outputDimensionality``.

    Other keyword arguments are those of :class:`~.base.Simulator`. ``api_key`` is the Gemini API
    key and the Vertex bearer token alike.
    """

    kind: ClassVar[str] = "gemini"
    in_stream_error_status: ClassVar[int] = 503
    request_id_header: ClassVar[str] = "x-request-id"

    def __init__(
        self,
        name: str = "gemini",
        *,
        models: Iterable[str] | None = None,
        embedding_dims: int = 8,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.models: tuple[str, ...] | None = tuple(models) if models is not None else None
        self.embedding_dims = embedding_dims

    def routes(self) -> list[tuple[str, str, Handler]]:
        vertex = "/projects/{project}/locations/{location}/publishers/google/models/{target}"
        return [
            ("POST", "/v1beta/models/{target}", self.handle_model_call),
            ("POST", "/v1/models/{target}", self.handle_model_call),
            ("POST", f"/v1{vertex}", self.handle_model_call),
            ("POST", f"/v1beta1{vertex}", self.handle_model_call),
            ("GET", "/v1beta/models", self.handle_list_models),
        ]

    @staticmethod
    def is_vertex(call: Call) -> bool:
        return "project" in call.request.match_info

    # -- auth and errors -----------------------------------------------------------------------

    def authenticate(self, call: Call) -> None:
        if self.api_key is None:
            return
        request = call.request
        if self.is_vertex(call):
            auth = request.headers.get("Authorization")
            if not auth:
                raise ApiError(
                    401,
                    "Request is missing required authentication credential. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                )
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or token.strip() != self.api_key:
                raise ApiError(401)
            return
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key != self.api_key:
            raise ApiError(
                400, "API key not valid. Please pass a valid API key.", error_code="API_KEY_INVALID"
            )

    def _error(self, err: ApiError) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": err.status,
            "message": err.message or _MESSAGES.get(err.status, f"HTTP {err.status}"),
            "status": err.error_type or _status_name(err.status),
        }
        if err.error_code:
            out["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": err.error_code,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        return out

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        return {"error": self._error(err)}

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(404, f"The requested URL {call.request.path} was not found on this server.")

    # -- dispatch on ``<model>:<method>`` ------------------------------------------------------

    async def handle_model_call(self, call: Call) -> web.StreamResponse:
        model, sep, method = call.request.match_info["target"].rpartition(":")
        if not sep or not model:
            raise ApiError(404, f"Unknown method for {call.request.path}")
        if self.models is not None and model not in self.models:
            raise ApiError(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                f"for {method}.",
            )
        if method == "generateContent":
            return await self.generate(call, model, stream=False)
        if method == "streamGenerateContent":
            return await self.generate(call, model, stream=True)
        if method == "embedContent":
            return await self.embed(call)
        if method == "batchEmbedContents":
            return await self.batch_embed(call)
        if method == "countTokens":
            body = call.json()
            return await self.send_json(call, {"totalTokens": self._prompt_tokens(body)})
        if method == "predict" and self.is_vertex(call):
            return await self.predict(call)
        raise ApiError(404, f"Method {method} is not found for model {model}.")

    # -- generateContent -----------------------------------------------------------------------

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        system = _get(body, "systemInstruction", "system_instruction")
        return max(1, count_words(body.get("contents")) + count_words(system))

    @staticmethod
    def _function(body: dict[str, Any]) -> str | None:
        tools = body.get("tools")
        if not isinstance(tools, list):
            return None
        names: list[str] = []
        for tool in tools:
            if isinstance(tool, dict):
                decls = _get(tool, "functionDeclarations", "function_declarations")
                if isinstance(decls, list):
                    names += [
                        str(d["name"])
                        for d in decls
                        if isinstance(d, dict) and isinstance(d.get("name"), str)
                    ]
        if not names:
            return None
        config = _get(body, "toolConfig", "tool_config")
        calling = (
            _get(config, "functionCallingConfig", "function_calling_config")
            if isinstance(config, dict)
            else None
        )
        mode = str(calling.get("mode", "AUTO")).upper() if isinstance(calling, dict) else "AUTO"
        if mode == "NONE":
            return None
        last = body["contents"][-1]
        parts = last.get("parts") if isinstance(last, dict) else None
        if isinstance(parts, list) and any(
            isinstance(p, dict) and (p.get("functionResponse") or p.get("function_response"))
            for p in parts
        ):
            return None
        if mode == "ANY" and isinstance(calling, dict):
            allowed = _get(calling, "allowedFunctionNames", "allowed_function_names")
            if isinstance(allowed, list) and allowed and isinstance(allowed[0], str):
                return allowed[0]
        return names[0]

    def _structured(self, body: dict[str, Any], config: Any) -> Answer | None:
        if not isinstance(config, dict):
            return None
        schema = _get(config, "responseJsonSchema", "response_json_schema")
        if schema is None:
            schema = _get(config, "responseSchema", "response_schema")
        if isinstance(schema, dict):
            return self.structured(json.dumps(structured.instance(schema, self.reply)))
        if _get(config, "responseMimeType", "response_mime_type") == "application/json":
            texts = structured.strings_in([body.get("systemInstruction"), body.get("contents")])
            return self.structured(structured.json_object_text(texts, self.reply))
        return None

    def _args(self, body: dict[str, Any], function: str) -> Any:
        for tool in body.get("tools") or ():
            if not isinstance(tool, dict):
                continue
            decls = _get(tool, "functionDeclarations", "function_declarations")
            for decl in decls if isinstance(decls, list) else ():
                if isinstance(decl, dict) and decl.get("name") == function:
                    schema = decl.get("parametersJsonSchema") or decl.get("parameters")
                    return structured.arguments(schema, self.reply)
        return {}

    async def generate(self, call: Call, model: str, *, stream: bool) -> web.StreamResponse:
        body = call.json()
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
        prompt = self._prompt_tokens(body)
        function = self._function(body)
        config = _get(body, "generationConfig", "generation_config")
        max_tokens = (
            _get(config, "maxOutputTokens", "max_output_tokens")
            if isinstance(config, dict)
            else None
        )
        answer = (
            self._structured(body, config)
            or self.prompted_json([body.get("systemInstruction"), contents])
            or self.answer(max_tokens, prompt={"contents": contents})
        )
        response_id = f"sim{self.new_id():016d}"
        extra: dict[str, Any] = {"modelVersion": model, "responseId": response_id}
        if self.is_vertex(call):
            extra["createTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")

        def response(
            parts: list[dict[str, Any]], output: int, finish: str | None
        ) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if finish is not None:
                candidate["finishReason"] = finish
            candidate["index"] = 0
            return {
                "candidates": [candidate],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": output,
                    "totalTokenCount": prompt + output,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                },
                **extra,
            }

        finish = "MAX_TOKENS" if answer.truncated else "STOP"
        if function:
            pieces: list[tuple[list[dict[str, Any]], int, str | None]] = [
                (
                    [{"functionCall": {"name": function, "args": self._args(body, function)}}],
                    2,
                    "STOP",
                )
            ]
        else:
            done = 0
            pieces = []
            for i, piece in enumerate(answer.pieces):
                done += len(piece.split())
                last = i == len(answer.pieces) - 1
                pieces.append(([{"text": piece}], done, finish if last else None))
        if not stream:
            if function:
                return await self.send_json(call, response(*pieces[0]))
            return await self.send_json(
                call, response([{"text": answer.text}], answer.tokens, finish)
            )

        sse_mode = call.request.query.get("alt") == "sse"
        if sse_mode:
            chunks = [b"data: " + orjson.dumps(response(*p)) + _SEP for p in pieces]

            def error_event(fault: Fault) -> bytes:
                err = ApiError.from_fault(fault, self.in_stream_error_status)
                return b"data: " + orjson.dumps({"error": self._error(err)}) + _SEP

            return await self.stream(
                call,
                preamble=[],
                chunks=chunks,
                epilogue=[],
                error_event=error_event,
                garbled=b'data: {"candidates": [{"content": {"parts": [{"text": "garbled' + _SEP,
            )
        # JSON array streaming: ``[`` obj ``,\r\n`` obj ... ``]``
        chunks = [
            (b"[" if i == 0 else b",\r\n") + orjson.dumps(response(*p))
            for i, p in enumerate(pieces)
        ]

        def array_error(fault: Fault) -> bytes:
            err = ApiError.from_fault(fault, self.in_stream_error_status)
            lead = b"[" if fault.after_chunks == 0 else b",\r\n"
            return lead + orjson.dumps({"error": self._error(err)}) + b"]"

        return await self.stream(
            call,
            preamble=[],
            chunks=chunks,
            epilogue=[b"]"],
            error_event=array_error,
            garbled=b',\r\n{"candidates": [{"content": ',
            content_type="application/json",
            charset="utf-8",
        )

    # -- embeddings ----------------------------------------------------------------------------

    def _dims(self, body: dict[str, Any]) -> int:
        dims = _get(body, "outputDimensionality", "output_dimensionality")
        if dims is None:
            return self.embedding_dims
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ApiError(400, "* outputDimensionality: must be a positive integer")
        return dims

    async def embed(self, call: Call) -> web.StreamResponse:
        body = call.json()
        text = _part_texts(body.get("content"))
        return await self.send_json(
            call, {"embedding": {"values": embedding_vector(text, self._dims(body))}}
        )

    async def batch_embed(self, call: Call) -> web.StreamResponse:
        body = call.json()
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
        embeddings = []
        for item in requests:
            if not isinstance(item, dict):
                raise ApiError(400, "* requests: must be objects")
            embeddings.append(
                {"values": embedding_vector(_part_texts(item.get("content")), self._dims(item))}
            )
        return await self.send_json(call, {"embeddings": embeddings})

    async def predict(self, call: Call) -> web.StreamResponse:
        body = call.json()
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise ApiError(400, "instances: must be a non-empty list")
        params = body.get("parameters")
        dims = self._dims(params) if isinstance(params, dict) else self.embedding_dims
        predictions = []
        for instance in instances:
            text = str(instance.get("content", "")) if isinstance(instance, dict) else ""
            predictions.append(
                {
                    "embeddings": {
                        "values": embedding_vector(text, dims),
                        "statistics": {"token_count": len(text.split()), "truncated": False},
                    }
                }
            )
        return await self.send_json(call, {"predictions": predictions})

    # -- models --------------------------------------------------------------------------------

    async def handle_list_models(self, call: Call) -> web.StreamResponse:
        models = self.models if self.models is not None else ("sim-gemini",)
        return await self.send_json(
            call,
            {
                "models": [
                    {
                        "name": f"models/{m}",
                        "version": "001",
                        "displayName": m,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                    for m in models
                ]
            },
        )
