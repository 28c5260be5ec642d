"""The Bedrock Converse simulator: event-stream framing, SigV4 checks, wire shapes."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiguillage.devtools.simulators import BedrockSimulator, sigv4
from aiguillage.devtools.simulators.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    EventStreamMessage,
    encode_message,
)

from .conftest import AWS_ACCESS_KEY, AWS_REGION, AWS_SECRET_KEY

MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
BODY: dict[str, Any] = {
    "system": [{"text": "Be brief"}],
    "messages": [{"role": "user", "content": [{"text": "Say hello to me"}]}],
    "inferenceConfig": {"maxTokens": 512},
}
TOOLS = {
    "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]
}


def model_url(sim: BedrockSimulator, operation: str, model: str = MODEL) -> str:
    # botocore percent-encodes the model id label (":" -> "%3A") in the URL it sends
    encoded = model.replace(":", "%3A").replace("/", "%2F")
    return f"{sim.url}/model/{encoded}/{operation}"


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    access_key: str = AWS_ACCESS_KEY,
    secret_key: str = AWS_SECRET_KEY,
    service: str = "bedrock",
    now: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    data = json.dumps(body).encode()
    if headers is None:
        headers = sigv4.sign(
            "POST",
            url,
            data,
            access_key=access_key,
            secret_key=secret_key,
            region=AWS_REGION,
            service=service,
            headers={"Content-Type": "application/json"},
            now=now,
        )
    return await http.post(URL(url, encoded=True), data=data, headers=headers)


def decode(raw: bytes) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder()
    messages = decoder.feed(raw)
    assert decoder.pending == 0
    return messages


# -- event-stream framing ----------------------------------------------------------------------


def test_eventstream_round_trip_and_layout() -> None:
    headers = {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    payload = b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'
    frame = encode_message(headers, payload)
    total = int.from_bytes(frame[0:4], "big")
    headers_len = int.from_bytes(frame[4:8], "big")
    assert total == len(frame)
    assert int.from_bytes(frame[8:12], "big") == zlib.crc32(frame[:8])
    assert int.from_bytes(frame[-4:], "big") == zlib.crc32(frame[:-4])
    assert frame[12 + headers_len : -4] == payload
    # fed one byte at a time, the decoder yields exactly one message at the end
    decoder = EventStreamDecoder()
    got: list[EventStreamMessage] = []
    for i in range(len(frame)):
        got += decoder.feed(frame[i : i + 1])
    assert got == [EventStreamMessage(dict(headers), payload)]
    typed = decode(
        encode_message({"flag": True, "off": False, "n": 7, "big": 2**40, "raw": b"\x00\x01"}, b"")
    )
    assert typed[0].headers == {
        "flag": True,
        "off": False,
        "n": 7,
        "big": 2**40,
        "raw": b"\x00\x01",
    }


def test_eventstream_detects_corruption() -> None:
    frame = bytearray(encode_message({":message-type": "event"}, b"{}"))
    frame[-6] ^= 0xFF
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))
    frame = bytearray(encode_message({":message-type": "event"}, b"{}"))
    frame[2] ^= 0x01
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_botocore_decodes_frames() -> None:
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(
        encode_message(
            {":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}'
        )
    )
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "messageStart"
    assert message.payload == b'{"role":"assistant"}'


# -- SigV4 -------------------------------------------------------------------------------------


def test_sigv4_matches_aws_published_examples() -> None:
    empty = hashlib.sha256(b"").hexdigest()
    # AWS SigV4 test suite, "get-vanilla"
    canonical = sigv4.canonical_request(
        "GET",
        "/",
        "",
        [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
        ["host", "x-amz-date"],
        empty,
    )
    assert (
        sigv4.signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z",
            "us-east-1",
            "service",
            canonical,
        )
        == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    # Amazon S3 API reference, "Example: GET Object"
    canonical = sigv4.canonical_request(
        "GET",
        "/test.txt",
        "",
        [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", empty),
            ("x-amz-date", "20130524T000000Z"),
        ],
        ["host", "range", "x-amz-content-sha256", "x-amz-date"],
        empty,
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    assert (
        sigv4.signature(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524T000000Z",
            "us-east-1",
            "s3",
            canonical,
        )
        == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sigv4_double_encodes_the_path() -> None:
    canonical = sigv4.canonical_request("POST", "/model/a%3A0/converse", "b=2&a=1", [], [], "x")
    assert canonical.split("\n")[1:3] == ["/model/a%253A0/converse", "a=1&b=2"]


# -- converse ----------------------------------------------------------------------------------


async def test_converse(bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession) -> None:
    async with await post(http, model_url(bedrock_sim, "converse"), BODY) as resp:
        assert resp.status == 200, await resp.text()
        assert "x-amzn-RequestId" in resp.headers
        body = await resp.json()
    assert body["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "Hello from bedrock-eu! This is a simulated answer."}],
    }
    assert body["stopReason"] == "end_turn"
    assert body["usage"] == {"inputTokens": 6, "outputTokens": 8, "totalTokens": 14}
    assert body["metrics"]["latencyMs"] >= 1
    assert bedrock_sim.last_request.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDSIMULATOR/"
    )


async def test_converse_stream_frames(
    bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession
) -> None:
    async with await post(http, model_url(bedrock_sim, "converse-stream"), BODY) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        messages = decode(await resp.read())
    kinds = [m.headers[":event-type"] for m in messages]
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * 4,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert all(m.headers[":message-type"] == "event" for m in messages)
    assert all(m.headers[":content-type"] == "application/json" for m in messages)
    payloads = [json.loads(m.payload) for m in messages]
    assert all("p" in p for p in payloads)  # padding field, as the real service sends
    assert payloads[0]["role"] == "assistant"
    text = "".join(p["delta"]["text"] for p in payloads[1:5])
    assert text == "Hello from bedrock-eu! This is a simulated answer."
    assert payloads[6]["stopReason"] == "end_turn"
    assert payloads[7]["usage"] == {"inputTokens": 6, "outputTokens": 8, "totalTokens": 14}


async def test_tool_use(bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession) -> None:
    async with await post(
        http, model_url(bedrock_sim, "converse"), {**BODY, "toolConfig": TOOLS}
    ) as resp:
        body = await resp.json()
    assert body["stopReason"] == "tool_use"
    tool_use = body["output"]["message"]["content"][0]["toolUse"]
    assert (tool_use["name"], tool_use["input"]) == ("get_weather", {})
    async with await post(
        http, model_url(bedrock_sim, "converse-stream"), {**BODY, "toolConfig": TOOLS}
    ) as resp:
        messages = decode(await resp.read())
    kinds = [m.headers[":event-type"] for m in messages]
    assert kinds[:3] == ["messageStart", "contentBlockStart", "contentBlockDelta"]
    assert json.loads(messages[1].payload)["start"]["toolUse"]["name"] == "get_weather"
    assert json.loads(messages[2].payload)["delta"]["toolUse"]["input"] == "{}"


async def test_max_tokens(bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession) -> None:
    async with await post(
        http, model_url(bedrock_sim, "converse"), {**BODY, "inferenceConfig": {"maxTokens": 2}}
    ) as resp:
        body = await resp.json()
    assert body["stopReason"] == "max_tokens"
    assert body["output"]["message"]["content"][0]["text"] == "Hello from"


async def test_in_stream_exception(
    bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession
) -> None:
    bedrock_sim.set_faults(
        [
            {"kind": "in_stream_error", "after_chunks": 2},
            {"kind": "in_stream_error", "status": 429},
        ]
    )
    async with await post(http, model_url(bedrock_sim, "converse-stream"), BODY) as resp:
        assert resp.status == 200
        messages = decode(await resp.read())
    assert [m.headers.get(":event-type") for m in messages[:3]] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
    ]
    last = messages[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "modelStreamErrorException"
    assert "message" in json.loads(last.payload)
    async with await post(http, model_url(bedrock_sim, "converse-stream"), BODY) as resp:
        messages = decode(await resp.read())
    assert messages[-1].headers[":exception-type"] == "throttlingException"


async def test_status_fault_shape(
    bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession
) -> None:
    bedrock_sim.set_faults([{"kind": "status", "status": 429, "retry_after": 1}])
    async with await post(http, model_url(bedrock_sim, "converse"), BODY) as resp:
        assert resp.status == 429
        assert resp.headers["x-amzn-ErrorType"].startswith("ThrottlingException:")
        assert resp.headers["Retry-After"] == "1"
        assert await resp.json() == {
            "message": "Too many requests, please wait before trying again."
        }
    async with await post(http, model_url(bedrock_sim, "converse"), {"messages": []}) as resp:
        assert resp.status == 400
        assert resp.headers["x-amzn-ErrorType"].startswith("ValidationException:")


async def test_auth_failures(bedrock_sim: BedrockSimulator, http: aiohttp.ClientSession) -> None:
    url = model_url(bedrock_sim, "converse")

    async def error_type(**kwargs: Any) -> str:
        async with await post(http, url, BODY, **kwargs) as resp:
            assert resp.status == 403
            assert "message" in await resp.json()
            return resp.headers["x-amzn-ErrorType"].partition(":")[0]

    assert await error_type(headers={}) == "MissingAuthenticationTokenException"
    assert (
        await error_type(headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"})
        == "IncompleteSignatureException"
    )
    assert await error_type(secret_key="wrong-secret") == "InvalidSignatureException"
    assert await error_type(service="bedrock-runtime") == "InvalidSignatureException"
    assert await error_type(access_key="AKIDOTHER") == "UnrecognizedClientException"
    assert (
        await error_type(now=datetime.now(UTC) - timedelta(hours=1)) == "InvalidSignatureException"
    )


async def test_structure_only_and_bearer(http: aiohttp.ClientSession) -> None:
    async with BedrockSimulator("bedrock-us", bearer_token="ABSKtoken") as sim:
        url = model_url(sim, "converse", "us.amazon.nova-pro-v1:0")
        # without a secret the signature itself is not checked, only its form and scope
        async with await post(http, url, BODY, secret_key="anything") as resp:
            assert resp.status == 200
        async with await post(
            http, url, BODY, headers={"Authorization": "Bearer ABSKtoken"}
        ) as resp:
            assert resp.status == 200
        async with await post(http, url, BODY, headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 403
