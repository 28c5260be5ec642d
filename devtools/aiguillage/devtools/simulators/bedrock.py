"""Simulated Amazon Bedrock Runtime (Converse API).

* ``POST /model/{modelId}/converse``: ``{"output": {"message": {"role": "assistant", "content":
  [{"text": ...}]}}, "stopReason", "usage": {"inputTokens", "outputTokens", "totalTokens"},
  "metrics": {"latencyMs"}}``.
* ``POST /model/{modelId}/converse-stream``: ``application/vnd.amazon.eventstream`` binary frames
  (see :mod:`.eventstream`): ``messageStart``, for a tool call ``contentBlockStart``,
  ``contentBlockDelta`` (``{"text"}`` or ``{"toolUse": {"input"}}``), ``contentBlockStop``,
  ``messageStop`` (``stopReason``) and ``metadata`` (usage, metrics). As on the real service
  every event payload also carries a padding field ``"p"``. An in-stream error is an exception
  frame (``:message-type: exception``, ``:exception-type: modelStreamErrorException`` by default;
  ``throttlingException`` for 429, ``serviceUnavailableException`` for 503,
  ``internalServerException`` for 500, ``validationException`` for 400).
* ``modelId`` may be a model id, an inference profile id (``eu.``/``us.``/``global.``) or a
  percent-encoded ARN. ``inferenceConfig.maxTokens`` cuts the answer (``stopReason:
  "max_tokens"``); ``toolConfig.tools[].toolSpec`` gives a ``toolUse`` answer (``toolChoice``
  ``{"tool": {"name"}}`` forces one) unless the last turn carries a ``toolResult``; its input
  fits the tool's ``inputSchema.json``. ``outputConfig.textFormat`` ``json_schema`` gets a text
  answer that fits the schema; a last assistant message ending in ``{`` (a prefill) is
  continued with the rest of a JSON object (see :mod:`.structured`).
* Auth: ``Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/bedrock/aws4_request,
  SignedHeaders=..., Signature=...`` is always required (Bedrock never takes unsigned calls). The
  scope's service must be ``bedrock``; with ``api_key`` the access key id must match; with
  ``secret_key`` the signature is verified (:mod:`.sigv4`, no botocore needed) and requests more
  than 15 minutes off are refused. ``Authorization: Bearer <bearer_token>`` (Bedrock API keys) is
  accepted when ``bearer_token`` is configured.
* Errors: HTTP status, ``x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/...`` header
  and ``{"message": ...}`` body (``ValidationException`` 400, ``AccessDeniedException`` 403,
  ``ThrottlingException`` 429, ``ModelErrorException`` 424, ``ServiceUnavailableException`` 503,
  ``InternalServerException`` 500...; auth failures are 403 ``UnrecognizedClientException``,
  ``InvalidSignatureException``, ``MissingAuthenticationTokenException``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import orjson
from aiohttp import web

from . import sigv4, structured
from .answers import Answer, count_words
from .base import Call, Handler, Simulator
from .eventstream import encode_message
from .faults import ApiError, Fault

__all__ = ["BedrockSimulator"]

_CORAL_BEDROCK: Final = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL_SERVICE: Final = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_AUTH_ERRORS: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    }
)
_NAMES: Final = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_STREAM_NAMES: Final = {
    400: "validationException",
    429: "throttlingException",
    500: "internalServerException",
    503: "serviceUnavailableException",
}
_MESSAGES: Final = {
    400: "Malformed input request, please reformat your input and try again.",
    403: "You don't have access to the model with the specified model ID.",
    404: "The requested resource could not be found.",
    408: "Model has timed out in processing the request.",
    424: "Received error from the model.",
    429: "Too many requests, please wait before trying again.",
    500: "The server encountered an internal error while processing the request.",
    503: "Bedrock is unable to process your request.",
}
_PADDING: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_MAX_SKEW: Final = 15 * 60


def _name(status: int) -> str:
    return _NAMES.get(status, "InternalServerException" if status >= 500 else "ValidationException")


class BedrockSimulator(Simulator):
    """Bedrock Runtime Converse wire format.

    :param api_key: the AWS access key id requests must be signed with (``None``: any).
    :param secret_key: when set, SigV4 signatures are verified with it.
    :param region: when set, the credential scope's region must be this one.
    :param bearer_token: accepted as ``Authorization: Bearer`` (a Bedrock API key).
    :param models: when given, other model ids get 400 ``ValidationException``.

    Other keyword arguments are those of :class:`~.base.Simulator`.
    """

    kind: ClassVar[str] = "bedrock"
    in_stream_error_status: ClassVar[int] = 424
    request_id_header: ClassVar[str] = "x-amzn-RequestId"

    def __init__(
        self,
        name: str = "bedrock",
        *,
        secret_key: str | None = None,
        region: str | None = None,
        bearer_token: str | None = None,
        models: Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.secret_key = secret_key
        self.region = region
        self.bearer_token = bearer_token
        self.models: tuple[str, ...] | None = tuple(models) if models is not None else None

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/model/{model_id:.+}/converse", self.handle_converse),
            ("POST", "/model/{model_id:.+}/converse-stream", self.handle_converse_stream),
        ]

    def response_headers(self, call: Call) -> dict[str, str]:
        n = int(call.request_id.rpartition("_")[2])
        return {"x-simulator": self.name, "x-amzn-RequestId": f"00000000-0000-4000-8000-{n:012d}"}

    # -- auth ----------------------------------------------------------------------------------

    def authenticate(self, call: Call) -> None:
        request = call.request
        auth = request.headers.get("Authorization")
        if not auth:
            raise ApiError(
                403,
                "Missing Authentication Token",
                error_type="MissingAuthenticationTokenException",
            )
        if auth.startswith("Bearer "):
            if self.bearer_token is None and (
                self.api_key is not None or self.secret_key is not None
            ):
                raise ApiError(
                    403,
                    "Authentication failed: bearer tokens are not enabled.",
                    error_type="UnrecognizedClientException",
                )
            if self.bearer_token is not None and auth[7:].strip() != self.bearer_token:
                raise ApiError(
                    403,
                    "Invalid API Key format: Must start with pre-defined prefix",
                    error_type="UnrecognizedClientException",
                )
            return
        try:
            cred = sigv4.parse_authorization(auth)
        except ValueError as exc:
            raise ApiError(403, str(exc), error_type="IncompleteSignatureException") from exc
        if cred.service != "bedrock":
            raise ApiError(
                403,
                "Credential should be scoped to correct service: 'bedrock'. ",
                error_type="InvalidSignatureException",
            )
        if self.region is not None and cred.region != self.region:
            raise ApiError(
                403,
                f"Credential should be scoped to a valid region, not '{cred.region}'. ",
                error_type="InvalidSignatureException",
            )
        if self.api_key is not None and cred.access_key != self.api_key:
            raise ApiError(
                403,
                "The security token included in the request is invalid.",
                error_type="UnrecognizedClientException",
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        if "host" not in cred.signed_headers or not amz_date or cred.date != amz_date[:8]:
            raise ApiError(
                403,
                "The request signature we calculated does not match the signature you provided. "
                "'Host' and 'X-Amz-Date' must be signed and match the credential scope.",
                error_type="InvalidSignatureException",
            )
        if self.secret_key is None:
            return
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ApiError(
                403, f"Invalid X-Amz-Date {amz_date!r}", error_type="InvalidSignatureException"
            ) from exc
        now = datetime.now(UTC)
        if abs((now - signed_at).total_seconds()) > _MAX_SKEW:
            raise ApiError(
                403,
                f"Signature expired: {amz_date} is now earlier than "
                f"{now.strftime('%Y%m%dT%H%M%SZ')} (15 min. skew allowed).",
                error_type="InvalidSignatureException",
            )
        raw_path, _, raw_query = request.raw_path.partition("?")
        canonical = sigv4.canonical_request(
            request.method,
            raw_path,
            raw_query,
            request.headers.items(),
            cred.signed_headers,
            hashlib.sha256(call.raw).hexdigest(),
        )
        expected = sigv4.signature(self.secret_key, amz_date, cred.region, cred.service, canonical)
        if expected != cred.signature:
            raise ApiError(
                403,
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.",
                error_type="InvalidSignatureException",
            )

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        return {"message": err.message or _MESSAGES.get(err.status, f"HTTP {err.status}")}

    def error_headers(self, call: Call, err: ApiError) -> dict[str, str]:
        name = err.error_type or _name(err.status)
        namespace = _CORAL_SERVICE if name in _AUTH_ERRORS else _CORAL_BEDROCK
        return {"x-amzn-ErrorType": f"{name}:{namespace}"}

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(404, "Unknown operation", error_type="UnknownOperationException")

    # -- converse ------------------------------------------------------------------------------

    def _request(self, call: Call) -> tuple[dict[str, Any], str]:
        body = call.json()
        model = call.request.match_info["model_id"]
        if self.models is not None and model not in self.models:
            raise ApiError(400, "The provided model identifier is invalid.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400,
                "1 validation error detected: Value null at 'messages' failed to satisfy "
                "constraint: Member must not be null",
            )
        return body, model

    @staticmethod
    def _tool(body: dict[str, Any]) -> str | None:
        config = body.get("toolConfig")
        if not isinstance(config, dict) or not isinstance(config.get("tools"), list):
            return None
        names = [
            str(t["toolSpec"]["name"])
            for t in config["tools"]
            if isinstance(t, dict)
            and isinstance(t.get("toolSpec"), dict)
            and isinstance(t["toolSpec"].get("name"), str)
        ]
        if not names:
            return None
        last = body["messages"][-1]
        content = last.get("content") if isinstance(last, dict) else None
        if isinstance(content, list) and any(
            isinstance(b, dict) and "toolResult" in b for b in content
        ):
            return None
        choice = config.get("toolChoice")
        if isinstance(choice, dict) and isinstance(choice.get("tool"), dict):
            forced = choice["tool"].get("name")
            if isinstance(forced, str):
                return forced
        return names[0]

    def _structured(self, body: dict[str, Any]) -> Answer | None:
        """The answer to a JSON schema output format or to a ``{`` prefill, if asked."""
        output = body.get("outputConfig")
        fmt = output.get("textFormat") if isinstance(output, dict) else None
        structure = fmt.get("structure") if isinstance(fmt, dict) else None
        spec = structure.get("jsonSchema") if isinstance(structure, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("schema"), str):
            schema = json.loads(spec["schema"])
            return self.structured(json.dumps(structured.instance(schema, self.reply)))
        rest = structured.prefill_continuation(body["messages"], body.get("system"), self.reply)
        return None if rest is None else self.structured(rest)

    def tool_input(self, body: dict[str, Any], tool: str) -> Any:
        config = body.get("toolConfig")
        specs = config.get("tools") if isinstance(config, dict) else None
        for spec in specs if isinstance(specs, list) else ():
            tool_spec = spec.get("toolSpec") if isinstance(spec, dict) else None
            if isinstance(tool_spec, dict) and tool_spec.get("name") == tool:
                schema = tool_spec.get("inputSchema")
                schema = schema.get("json") if isinstance(schema, dict) else None
                return structured.arguments(schema, self.reply)
        return {}

    def _prepare(self, call: Call) -> tuple[dict[str, Any], str | None, Any, int, int, str]:
        body, _model = self._request(call)
        prompt = max(
            1, count_words(body.get("messages")) + count_words(body.get("system"), "system")
        )
        config = body.get("inferenceConfig")
        answer = (
            self._structured(body)
            or self.prompted_json([body.get("system"), body["messages"]])
            or self.answer(
                config.get("maxTokens") if isinstance(config, dict) else None,
                prompt={"messages": body["messages"]},
            )
        )
        tool = self._tool(body)
        if tool:
            return body, tool, answer, prompt, 2, "tool_use"
        return (
            body,
            None,
            answer,
            prompt,
            answer.tokens,
            "max_tokens" if answer.truncated else "end_turn",
        )

    async def handle_converse(self, call: Call) -> web.StreamResponse:
        body, tool, answer, prompt, output, stop = self._prepare(call)
        seq = self.new_id()
        content: list[dict[str, Any]]
        if tool:
            use = {
                "toolUseId": f"tooluse_sim{seq:012d}",
                "name": tool,
                "input": self.tool_input(body, tool),
            }
            content = [{"toolUse": use}]
        else:
            content = [{"text": answer.text}]
        return await self.send_json(
            call,
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": {
                    "inputTokens": prompt,
                    "outputTokens": output,
                    "totalTokens": prompt + output,
                },
                "metrics": {"latencyMs": self._latency(call)},
            },
        )

    @staticmethod
    def _latency(call: Call) -> int:
        return max(1, int((time.monotonic() - call.started) * 1000))

    async def handle_converse_stream(self, call: Call) -> web.StreamResponse:
        body, tool, answer, prompt, output, stop = self._prepare(call)
        seq = self.new_id()
        padding = iter(range(1_000_000))

        def frame(event_type: str, payload: dict[str, Any]) -> bytes:
            n = next(padding)
            payload["p"] = _PADDING[: 8 + (n * 7) % (len(_PADDING) - 8)]
            return encode_message(
                {
                    ":event-type": event_type,
                    ":content-type": "application/json",
                    ":message-type": "event",
                },
                orjson.dumps(payload),
            )

        preamble = [frame("messageStart", {"role": "assistant"})]
        if tool:
            preamble.append(
                frame(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": 0,
                        "start": {"toolUse": {"toolUseId": f"tooluse_sim{seq:012d}", "name": tool}},
                    },
                )
            )
            chunks = [
                frame(
                    "contentBlockDelta",
                    {
                        "contentBlockIndex": 0,
                        "delta": {"toolUse": {"input": json.dumps(self.tool_input(body, tool))}},
                    },
                )
            ]
        else:
            chunks = [
                frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                for piece in answer.pieces
            ]
        epilogue = [
            frame("contentBlockStop", {"contentBlockIndex": 0}),
            frame("messageStop", {"stopReason": stop}),
            frame(
                "metadata",
                {
                    "usage": {
                        "inputTokens": prompt,
                        "outputTokens": output,
                        "totalTokens": prompt + output,
                    },
                    "metrics": {"latencyMs": self._latency(call)},
                },
            ),
        ]

        def error_event(fault: Fault) -> bytes:
            err = ApiError.from_fault(fault, self.in_stream_error_status)
            name = err.error_type or _STREAM_NAMES.get(err.status, "modelStreamErrorException")
            payload: dict[str, Any] = {
                "message": err.message or _MESSAGES.get(err.status, "Model stream error.")
            }
            if name == "modelStreamErrorException":
                payload.update(originalStatusCode=err.status, originalMessage=payload["message"])
            return encode_message(
                {
                    ":exception-type": name,
                    ":content-type": "application/json",
                    ":message-type": "exception",
                },
                orjson.dumps(payload),
            )

        garbled = encode_message(
            {
                ":event-type": "contentBlockDelta",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            b'{"contentBlockIndex":0,"delta":{"text":',
        )
        return await self.stream(
            call,
            preamble=preamble,
            chunks=chunks,
            epilogue=epilogue,
            error_event=error_event,
            garbled=garbled,
            content_type="application/vnd.amazon.eventstream",
            charset=None,
        )
