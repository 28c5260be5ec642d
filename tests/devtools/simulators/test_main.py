"""``python -m aiguillage.devtools.simulators`` prints ``READY <url>`` and serves until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from aiguillage.devtools.simulators import AzureOpenAISimulator, BedrockSimulator
from aiguillage.devtools.simulators.__main__ import build_parser, make_simulator


async def test_main_prints_ready_and_serves(http: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiguillage.devtools.simulators",
        "--kind",
        "openai",
        "--name",
        "mistral-eu",
        "--port",
        "0",
        "--api-key",
        "k",
        "--chunks",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.split()[1]
        async with http.post(
            url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            headers={"Authorization": "Bearer k"},
        ) as resp:
            assert resp.status == 200
            body = await resp.text()
        assert "mistral-eu" in body
        assert body.count('"content":"') == 3  # the role chunk's "" and two deltas
        async with http.get(url + "/_sim/requests") as resp:
            assert len((await resp.json())["requests"]) == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
        rest = await process.stdout.read()
        assert rest == b""  # exactly one line of output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_command_line_options() -> None:
    parser = build_parser()
    azure = make_simulator(
        parser.parse_args(
            ["--kind", "azure", "--deployment", "chat=gpt-4o", "--api-version", "2024-10-21"]
        )
    )
    assert isinstance(azure, AzureOpenAISimulator)
    assert azure.deployments == {"chat": "gpt-4o"}
    assert azure.name == "azure"
    bedrock = make_simulator(
        parser.parse_args(
            ["--kind", "bedrock", "--api-key", "AKID", "--secret-key", "s", "--region", "eu-west-3"]
        )
    )
    assert isinstance(bedrock, BedrockSimulator)
    assert (bedrock.api_key, bedrock.secret_key, bedrock.region) == ("AKID", "s", "eu-west-3")
    assert not bedrock.echo
    assert make_simulator(parser.parse_args(["--kind", "gemini", "--echo"])).echo
