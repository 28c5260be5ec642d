"""Model listings and unknown paths (sidecar/endpoints.py), in each client API's shape."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.sidecar.conftest import CLIENT_KEY, RunningSidecar


def test_openai_sdk_retrieves_a_route_as_a_model(sidecar: RunningSidecar) -> None:
    model = sidecar.client().models.retrieve("chat")
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "aiguillage")


def test_an_unknown_model_is_openais_404(sidecar: RunningSidecar) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sidecar.client().models.retrieve("gpt-5")
    assert info.value.code == "model_not_found"
    assert "routes: chat, embed" in info.value.message


def test_anthropic_sdk_lists_and_retrieves_routes(sidecar: RunningSidecar) -> None:
    client = anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0)
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["chat", "embed"]
    model = client.models.retrieve("chat")
    assert (model.id, model.type) == ("chat", "model")
    with pytest.raises(anthropic.NotFoundError) as info:
        client.models.retrieve("claude-opus-9")
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize("path", ["/v1/assistants", "/v1/chat/completion", "/favicon.ico"])
def test_unknown_paths_answer_openais_404_not_a_text_page(
    sidecar: RunningSidecar, path: str
) -> None:
    resp = sidecar.raw("POST", path, json={"model": "chat"})
    assert resp.status == 404
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "unknown_path")
    assert path in error["message"]


def test_a_known_path_with_another_method_is_a_405_naming_the_allowed_ones(
    sidecar: RunningSidecar,
) -> None:
    resp = sidecar.raw("GET", "/v1/chat/completions")
    assert resp.status == 405
    assert resp.headers["allow"] == "POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_requests_that_look_anthropic_get_anthropics_error_shape(
    sidecar: RunningSidecar,
) -> None:
    unknown = sidecar.raw("POST", "/v1/messages/batches", headers={"anthropic-version": "x"})
    assert unknown.status == 404
    assert unknown.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": unknown.json()["error"]["message"]},
    }
    wrong_method = sidecar.raw("GET", "/v1/messages")
    assert wrong_method.status == 405
    assert wrong_method.json()["type"] == "error"
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


def test_the_sdks_raise_their_not_found_errors(sidecar: RunningSidecar) -> None:
    with pytest.raises(openai.NotFoundError):
        sidecar.client().batches.list()
    client = anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.list()
