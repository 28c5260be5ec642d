"""The Vertex AI adapter (adapters/vertex_ai.py): URLs per the Vertex REST reference
(``{host}/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``),
bearer auth, embeddings through ``:predict``, and a real sidecar in front of the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from aiguillage.devtools.simulators.gemini import GeminiSimulator
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.vertex_ai import VertexAIAdapter
from aiguillage.sidecar.config import Provider, Target
from aiguillage.sidecar.errors import ConfigError
from tests.sidecar.adapters._sidecar import route, running_sidecar

TOKEN = "ya29.simulated-access-token"
MODEL = "gemini-2.5-flash"
HELLO = "Hello from vertex-sim! This is a simulated answer."
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def url_for(endpoint: str, **options: str) -> str:
    adapter = VertexAIAdapter(Provider(api="vertex-ai", endpoint=endpoint, options=options), TOKEN)
    return adapter.build(Call(Operation.CHAT, CHAT, stream=False), MODEL).url


def test_location_comes_from_the_regional_host() -> None:
    assert url_for("https://europe-west4-aiplatform.googleapis.com", project="p1") == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4"
        f"/publishers/google/models/{MODEL}:generateContent"
    )
    assert url_for("https://aiplatform.googleapis.com", project="p1").startswith(
        "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/"
    )
    assert url_for("https://aiplatform.eu.rep.googleapis.com", project="p1").startswith(
        "https://aiplatform.eu.rep.googleapis.com/v1/projects/p1/locations/eu/"
    )


def test_versioned_endpoint_and_explicit_location() -> None:
    assert url_for("http://127.0.0.1:9/v1beta1", project="p1", location="europe-west9") == (
        "http://127.0.0.1:9/v1beta1/projects/p1/locations/europe-west9"
        f"/publishers/google/models/{MODEL}:generateContent"
    )


@pytest.mark.parametrize(
    ("endpoint", "options", "message"),
    [
        ("https://europe-west4-aiplatform.googleapis.com", {}, "options.project"),
        ("http://127.0.0.1:9", {"project": "p1"}, "options.location"),
        (
            "https://europe-west4-aiplatform.googleapis.com",
            {"project": "p1", "location": "us-central1"},
            'does not match the endpoint\'s location "europe-west4"',
        ),
    ],
)
def test_config_errors(endpoint: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VertexAIAdapter(Provider(api="vertex-ai", endpoint=endpoint, options=options), TOKEN)


@pytest.fixture
async def sim() -> AsyncIterator[GeminiSimulator]:
    simulator = GeminiSimulator("vertex-sim", api_key=TOKEN)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: GeminiSimulator, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    provider = Provider(
        api="vertex-ai",
        endpoint=sim.url,
        location="NL",
        credential="vertex",
        options={"project": "team-a-prod", "location": "europe-west4"},
    )
    routes = [
        route("chat", Target(provider="vertex", model=MODEL)),
        route("embed", Target(provider="vertex", model="text-embedding-005")),
    ]
    async with running_sidecar(tmp_path, {"vertex": provider}, routes, {"vertex": TOKEN}) as c:
        yield c


PATH = "/v1/projects/team-a-prod/locations/europe-west4/publishers/google/models"


async def test_chat(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    completion = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Say hello"}], temperature=0
    )

    assert completion.choices[0].message.content == HELLO
    assert sim.last_request.path == f"{PATH}/{MODEL}:generateContent"
    assert sim.last_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert sim.last_request.body["generationConfig"] == {"temperature": 0}


async def test_stream_with_usage(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    assert sim.last_request.path == f"{PATH}/{MODEL}:streamGenerateContent"


async def test_embeddings_through_predict(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    result = await client.embeddings.create(model="embed", input="three words here", dimensions=4)

    assert len(result.data[0].embedding) == 4
    assert result.usage.prompt_tokens == 3
    assert sim.last_request.path == f"{PATH}/text-embedding-005:predict"
    assert sim.last_request.body == {
        "instances": [{"content": "three words here"}],
        "parameters": {"outputDimensionality": 4},
    }
