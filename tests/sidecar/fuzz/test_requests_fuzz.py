"""Fuzz tier: hostile request bodies on every endpoint, against every provider format.

One sidecar serves a route per wire format (``openai``, ``azure-openai``, ``anthropic``,
``gemini``, ``vertex-ai``, ``bedrock``), each backed by its simulator, and its twin with
data-protection rules (``openai-dp``...: every built-in category, pseudonymised or redacted
toward these providers, all under US jurisdiction), so that hostile bodies go through the
scan, the per-target copies and the restoring of answers too. Hypothesis generates
bodies for ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses``, ``/v1/messages`` and ``/v1/messages/count_tokens``: a valid body with
fields replaced by values of the wrong type, extra fields, deep nesting, huge strings and
unicode edge cases, or bytes that are not JSON at all. For every one:

- the answer is well formed in the client's API shape (an OpenAI or Anthropic error body,
  a JSON object, or an SSE stream that ends with its end marker or an error event);
- the sidecar never answers 500 (the providers here are well behaved: a 500 could only be
  the sidecar failing on what the client sent);
- the audit record of the request says what the client got: its status, and ``ok`` (or
  ``answered_by_sidecar``) only for a 200;
- nothing is logged at ERROR (no unhandled exception, no "internal error").

Run by ``make test-fuzz`` (part of ``make test``). The examples are the same on every run
(``derandomize``) so CI does not fail at random; ``AIGUILLAGE_FUZZ_RANDOM=1`` explores new
ones and ``AIGUILLAGE_FUZZ_EXAMPLES`` sets how many per endpoint.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.config import SidecarConfig, Target
from aiguillage.sidecar.main import Sidecar
from aiguillage.sidecar.privacy.rules import DataProtectionRules
from tests.sidecar._wire import anthropic_error, openai_error
from tests.sidecar.conftest import route, write_files
from tests.sidecar.fuzz._bodies import PLAUSIBLE, bodies
from tests.sidecar.test_sdk_matrix import ROWS

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("AIGUILLAGE_FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("AIGUILLAGE_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUTES = sorted(ROWS)
PROTECTED = [f"{api}-dp" for api in ROUTES]
RULES = DataProtectionRules.model_validate(
    {
        "rules": [
            {"categories": ["email", "phone"], "action": "pseudonymise"},
            {"categories": ["iban", "vat", "national_id", "payment_card", "ip_address"],
             "action": "redact", "when": {"notJurisdictions": ["EU"]}},
        ]
    }
)  # fmt: skip
EMBEDDING_MODELS = {"gemini": "text-embedding-004", "vertex-ai": "text-embedding-005"}


# -- one sidecar for the module --------------------------------------------------------------------


class Served:
    """The sidecar, its audit file read incrementally, and the errors logged meanwhile."""

    def __init__(self, lt: LoopThread, sidecar: Sidecar, audit: Path) -> None:
        self.lt = lt
        self.sidecar = sidecar
        self.audit = audit
        self._offset = 0
        self._records: dict[str, dict[str, Any]] = {}
        self.errors: list[logging.LogRecord] = []
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"fuzz-{next(self._ids)}"

    def record(self, rid: str) -> dict[str, Any]:
        from tests.sidecar.conftest import wait_for

        def find() -> dict[str, Any] | None:
            with self.audit.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                parsed = orjson.loads(line)
                if parsed.get("kind") != "checkpoint":  # the audit chain's own lines
                    self._records[parsed["requestId"]] = parsed
            self._offset += end
            return self._records.pop(rid, None)

        return wait_for(find, 10, f"audit record {rid}")  # type: ignore[no-any-return]


class ErrorLog(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture(scope="module")
def served(lt: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("fuzz")
    sims: list[Simulator] = []
    providers, routes, credentials = {}, [], {}
    for api in ROUTES:
        row = ROWS[api]
        sim = row.simulator()
        lt.run(sim.start())
        sims.append(sim)
        providers[api] = row.provider(sim.url).model_copy(update={"jurisdiction": "US"})
        credentials[api] = row.credential
        embedding = EMBEDDING_MODELS.get(api, "text-embedding-3-small")
        for name, rules in ((api, None), (f"{api}-dp", RULES)):
            for model, twin in ((row.model, name), (embedding, f"{name}-embed")):
                target = Target(provider=api, model=model)
                routes.append(route(twin, target).model_copy(update={"data_protection": rules}))
    providers = {name: p.model_copy(update={"credential": name}) for name, p in providers.items()}
    config = SidecarConfig(
        namespace="fuzz", providers=providers, routes={r.name: r for r in routes}
    )
    write_files(root / "config", root / "credentials", config, credentials)
    sidecar = Sidecar(root / "config", root / "credentials", str(root / "audit.jsonl"))
    lt.run(sidecar.start("127.0.0.1:0"))
    served = Served(lt, sidecar, root / "audit.jsonl")
    handler = ErrorLog(served.errors)
    for name in ("aiguillage", "aiohttp"):
        logging.getLogger(name).addHandler(handler)
    try:
        yield served
    finally:
        for name in ("aiguillage", "aiohttp"):
            logging.getLogger(name).removeHandler(handler)
        lt.run(sidecar.stop())
        for sim in sims:
            lt.run(sim.stop())


# -- the property --------------------------------------------------------------------------------

# Outcomes of a complete answer: a provider's, or the sidecar's own (count_tokens estimated).
ANSWERED = ("ok", "answered_by_sidecar")
END_MARKERS = (
    b"data: [DONE]",
    b"event: message_stop",
    b"event: response.completed",
    b"event: response.incomplete",
)


async def send(url: str, raw: bytes, rid: str) -> tuple[int, dict[str, str], bytes]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            url, data=raw, headers={"content-type": "application/json", "x-request-id": rid}
        ) as resp,
    ):
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def check_shape(path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    anthropic = path.startswith("/v1/messages")
    content_type = headers.get("content-type", "")
    if status != 200:
        assert content_type.startswith("application/json"), (status, body[:200])
        if anthropic:
            anthropic_error(body)
        else:
            openai_error(body)
    elif content_type.startswith("text/event-stream"):
        frames = [f for f in body.split(b"\n\n") if f.strip()]
        assert frames, "an empty stream"
        last = frames[-1]
        if not any(marker in last for marker in END_MARKERS):
            data = last.split(b"data: ", 1)[1]
            error = orjson.loads(data)
            if anthropic:
                anthropic_error(data)
            else:
                assert "error" in error or error.get("type") in ("error", "response.failed"), last
    else:
        assert content_type.startswith("application/json"), content_type
        assert isinstance(orjson.loads(body), dict)


def exercise(served: Served, path: str, raw: bytes) -> None:
    served.errors.clear()
    rid = served.next_id()
    status, headers, body = served.lt.run(send(served.sidecar.url + path, raw, rid))

    event(f"{status} {headers.get('content-type', '').split(';')[0]}")
    assert status != 500, body[:500]
    check_shape(path, status, headers, body)
    assert headers["x-request-id"] == rid
    record = served.record(rid)
    assert record["status"] == status, (record, body[:300])
    if status == 200 and not headers.get("content-type", "").startswith("text/event-stream"):
        assert record["outcome"] in ANSWERED, record
    if status != 200:
        assert record["outcome"] not in ANSWERED, record
    assert not served.errors, [r.getMessage() for r in served.errors]


@pytest.mark.parametrize("path", list(PLAUSIBLE))
@FUZZ
@given(data=st.data())
def test_hostile_bodies(served: Served, path: str, data: st.DataObject) -> None:
    exercise(served, path, data.draw(bodies(path, ROUTES + PROTECTED), label="body"))
