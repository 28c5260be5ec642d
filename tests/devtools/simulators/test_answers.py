"""Echo mode (``answers.py``): every format repeats the request's last text, streamed one to
three characters per delta, and the request log says what was received."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import openai

from aiguillage.devtools.simulators import (
    AnthropicSimulator,
    BedrockSimulator,
    GeminiSimulator,
    OpenAISimulator,
)
from aiguillage.devtools.simulators.answers import echo_answer, last_text

from .conftest import ANTHROPIC_KEY, OPENAI_KEY
from .test_bedrock import BODY as BEDROCK_BODY
from .test_bedrock import decode, model_url, post
from .test_gemini import BODY as GEMINI_BODY
from .test_gemini import KEY as GEMINI_AUTH
from .test_gemini import sse_events

SAID = "Mail [EMAIL_1] today"
ECHO = "You said: " + SAID


def assert_tiny(pieces: list[str]) -> None:
    assert "".join(pieces) == ECHO
    assert {len(p) for p in pieces} == {1, 2, 3}
    assert not any("[EMAIL_1]" in p for p in pieces)  # the placeholder is split


def test_echo_answer_and_last_text() -> None:
    answer = echo_answer(SAID)
    assert answer.text == ECHO
    assert [len(p) for p in answer.pieces[:6]] == [1, 2, 3, 1, 2, 3]
    assert_tiny(list(answer.pieces))
    assert answer.tokens == 5
    # The latest text of each provider's request shape; names that are not text are skipped.
    assert last_text({"messages": [{"role": "user", "content": "a"}, {"content": "b"}]}) == "b"
    parts = {"contents": [{"role": "user", "parts": [{"text": "a"}, {"text": "c"}]}]}
    assert last_text(parts) == "c"
    assert last_text({"messages": [{"role": "user", "content": [{"type": "text"}]}]}) is None
    assert last_text({"prompt": ["x", "y"]}) == "y"


async def test_echo_is_off_by_default_and_set_over_http(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    prompt = {"messages": [{"role": "user", "content": SAID}]}
    assert openai_sim.answer(prompt=prompt).text.startswith("Hello from")
    async with http.post(openai_sim.url + "/_sim/config", json={"echo": True}) as resp:
        assert (await resp.json())["echo"] is True
    assert openai_sim.answer(prompt=prompt).text == ECHO
    async with http.post(openai_sim.url + "/_sim/config", json={"echo": "yes"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "'echo' must be a boolean"


async def test_openai_chat_and_responses_echo(openai_sim: OpenAISimulator) -> None:
    openai_sim.configure(echo=True)
    client = openai.AsyncOpenAI(base_url=openai_sim.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": SAID}],
        stream=True,
    )
    assert_tiny([c.choices[0].delta.content async for c in stream if c.choices[0].delta.content])
    events = await client.responses.create(model="m", input=SAID, stream=True)
    assert_tiny([e.delta async for e in events if e.type == "response.output_text.delta"])
    completion = await client.completions.create(model="m", prompt=SAID)
    assert completion.choices[0].text == ECHO
    assert openai_sim.requests[0].body["messages"][1]["content"] == SAID


async def test_anthropic_echo(anthropic_sim: AnthropicSimulator) -> None:
    anthropic_sim.configure(echo=True)
    client = anthropic.AsyncAnthropic(
        base_url=anthropic_sim.url, api_key=ANTHROPIC_KEY, max_retries=0
    )
    async with client.messages.stream(
        model="claude",
        max_tokens=5,
        system="Be brief",
        messages=[{"role": "user", "content": SAID}],
    ) as stream:
        assert_tiny([text async for text in stream.text_stream])


async def test_gemini_and_bedrock_echo(
    gemini_sim: GeminiSimulator, bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession
) -> None:
    gemini_sim.configure(echo=True)
    bedrock_sim.configure(echo=True)
    gemini_body = {**GEMINI_BODY, "contents": [{"role": "user", "parts": [{"text": SAID}]}]}
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    async with http.post(url, params={"alt": "sse"}, json=gemini_body, headers=GEMINI_AUTH) as resp:
        events = sse_events(await resp.read())
    assert_tiny([e["candidates"][0]["content"]["parts"][0]["text"] for e in events])

    bedrock_body = {**BEDROCK_BODY, "messages": [{"role": "user", "content": [{"text": SAID}]}]}
    async with await post(http, model_url(bedrock_sim, "converse-stream"), bedrock_body) as resp:
        payloads = [json.loads(m.payload) for m in decode(await resp.read())]
    assert_tiny([p["delta"]["text"] for p in payloads if "text" in p.get("delta", {})])
