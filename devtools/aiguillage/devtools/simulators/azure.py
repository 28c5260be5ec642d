"""Simulated Azure OpenAI: the OpenAI wire format behind Azure's paths, auth and error shapes.

* ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` (also
  ``/completions`` and ``/embeddings``): the ``api-version`` query parameter is required; without
  it Azure answers 404 ``{"error": {"code": "404", "message": "Resource not found"}}``. An unknown
  deployment gets 404 ``DeploymentNotFound``. The deployment name is not the model name: answers
  carry the model the deployment serves.
* ``/openai/v1/...`` (the version-less API): ``model`` in the body names the deployment.
* Auth: ``api-key: <key>`` or ``Authorization: Bearer <token>`` (Entra ID); a wrong one gets 401
  ``{"error": {"code": "401", "message": "Access denied due to invalid subscription key..."}}``.
* Answers carry ``prompt_filter_results`` and per-choice ``content_filter_results``; a stream
  starts with a chunk whose ``choices`` is empty and which only carries
  ``prompt_filter_results`` (clients must not index ``choices[0]`` blindly).
* 401, 403, 404 and 429 use Azure's gateway shape ``{"error": {"code": "<status>", "message"}}``;
  a 429 carries ``retry-after-ms`` besides ``Retry-After``. A ``status`` fault with
  ``error_code: "content_filter"`` (400) gives the content-management-policy error body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Final

from aiohttp import web

from .base import Call, Handler
from .faults import ApiError
from .openai import OpenAISimulator
from .streaming import sse

__all__ = ["AzureOpenAISimulator"]

_SAFE: Final = {"filtered": False, "severity": "safe"}
_CATEGORIES: Final = ("hate", "self_harm", "sexual", "violence")
Answerer = Callable[[Call, dict[str, Any], str], Awaitable[web.StreamResponse]]
_GATEWAY_MESSAGES: Final = {
    401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint for "
    "your resource.",
    403: "Public access is disabled. Please configure private endpoint.",
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded "
    "the rate limit of your current tier. Please retry after a few seconds.",
}


def _filter_results() -> dict[str, Any]:
    return {category: dict(_SAFE) for category in _CATEGORIES}


class AzureOpenAISimulator(OpenAISimulator):
    """Azure OpenAI wire format.

    :param deployments: deployment name to model name; ``None`` accepts any deployment and uses
        its name as the model.
    :param api_versions: accepted ``api-version`` values; ``None`` accepts any non-empty one.

    Other keyword arguments are those of :class:`~.openai.OpenAISimulator` (its ``base_path`` is
    not used).
    """

    kind: ClassVar[str] = "azure"
    request_id_header: ClassVar[str] = "apim-request-id"

    def __init__(
        self,
        name: str = "azure-openai",
        *,
        deployments: Mapping[str, str] | None = None,
        api_versions: list[str] | tuple[str, ...] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.deployments = dict(deployments) if deployments is not None else None
        self.api_versions = tuple(api_versions) if api_versions is not None else None

    def routes(self) -> list[tuple[str, str, Handler]]:
        dep = "/openai/deployments/{deployment}"
        return [
            ("POST", f"{dep}/chat/completions", self._deployment(self.chat)),
            ("POST", f"{dep}/completions", self._deployment(self.completions)),
            ("POST", f"{dep}/embeddings", self._deployment(self.embeddings)),
            ("POST", "/openai/v1/chat/completions", self._v1(self.chat)),
            ("POST", "/openai/v1/completions", self._v1(self.completions)),
            ("POST", "/openai/v1/embeddings", self._v1(self.embeddings)),
            ("POST", "/openai/v1/responses", self._v1(self.responses)),
            ("GET", "/openai/v1/models", self.handle_models),
        ]

    def listed_models(self) -> tuple[str, ...]:
        if self.deployments is not None:
            return tuple(self.deployments)
        return ("sim-deployment",)

    def _model_for(self, deployment: str) -> str:
        if self.deployments is None:
            return deployment
        model = self.deployments.get(deployment)
        if model is None:
            raise ApiError(
                404,
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
                error_code="DeploymentNotFound",
            )
        return model

    def _deployment(self, answer: Answerer) -> Handler:
        async def handler(call: Call) -> web.StreamResponse:
            version = call.request.query.get("api-version", "")
            if not version or (self.api_versions is not None and version not in self.api_versions):
                raise ApiError(404, "Resource not found", error_code="404")
            model = self._model_for(call.request.match_info["deployment"])
            return await answer(call, call.json(), model)

        return handler

    def _v1(self, answer: Answerer) -> Handler:
        async def handler(call: Call) -> web.StreamResponse:
            body = call.json()
            deployment = body.get("model")
            if not isinstance(deployment, str) or not deployment:
                raise ApiError(
                    400, "you must provide a model parameter", param="model", error_code=""
                )
            return await answer(call, body, self._model_for(deployment))

        return handler

    # -- auth and errors -----------------------------------------------------------------------

    def authenticate(self, call: Call) -> None:
        if self.api_key is None:
            return
        headers = call.request.headers
        key = headers.get("api-key")
        if key is None:
            scheme, _, token = headers.get("Authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        if key != self.api_key:
            raise ApiError(401, error_code="401")

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        if err.error_code == "content_filter":
            return {
                "error": {
                    "message": err.message
                    or "The response was filtered due to the prompt triggering Azure OpenAI's "
                    "content management policy. Please modify your prompt and retry.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": err.status,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            **_filter_results(),
                            "violence": {"filtered": True, "severity": "high"},
                        },
                    },
                }
            }
        if err.status in _GATEWAY_MESSAGES:
            return {
                "error": {
                    "code": err.error_code or str(err.status),
                    "message": err.message or _GATEWAY_MESSAGES[err.status],
                }
            }
        return super().error_body(call, err)

    def error_headers(self, call: Call, err: ApiError) -> dict[str, str]:
        if err.retry_after is not None:
            return {"retry-after-ms": str(int(err.retry_after * 1000))}
        return {}

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(404, "Resource not found", error_code="404")

    # -- content filter decorations ------------------------------------------------------------

    def decorate_completion(self, obj: dict[str, Any]) -> None:
        obj["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": _filter_results()}
        ]
        for choice in obj["choices"]:
            choice["content_filter_results"] = _filter_results()

    def stream_prologue(self, call: Call) -> list[bytes]:
        return [
            sse(
                {
                    "choices": [],
                    "created": 0,
                    "id": "",
                    "model": "",
                    "object": "",
                    "prompt_filter_results": [
                        {"prompt_index": 0, "content_filter_results": _filter_results()}
                    ],
                }
            )
        ]
