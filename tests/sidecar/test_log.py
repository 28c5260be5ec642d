"""Nothing the sidecar writes (logs, stdout, stderr, audit) contains a prompt, a completion or
a key (``log.py`` promises it for the loggers; this checks every output at once)."""

from __future__ import annotations

import logging
from typing import Any

import openai
import orjson
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import Provider, SidecarConfig
from tests.sidecar.conftest import (
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
    us_target,
    wait_for,
)

PROMPT = "PROMPT-kumquat-7731 please summarise the merger memo"
COMPLETION = "COMPLETION-persimmon-5508 the memo says nothing"
KEY = "sk-SECRET-zebra-4242-do-not-log"
CLIENT_KEY = "sk-CLIENT-okapi-9090"
SECRETS = (PROMPT, "kumquat", COMPLETION, "persimmon", KEY, "zebra", CLIENT_KEY, "okapi")
# The test's own client libraries log its requests at DEBUG; only the servers' logs count.
CLIENT_LOGGERS = ("openai", "httpx", "httpcore")


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(CLIENT_LOGGERS)
    )


def test_no_prompt_completion_or_key_in_any_output(
    lt: LoopThread,
    start_sidecar: StartSidecar,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    eu = OpenAISimulator("mistral-eu", api_key=KEY, reply=COMPLETION)
    us = OpenAISimulator("openai-us", api_key=KEY, reply=COMPLETION)
    lt.run(eu.start())
    lt.run(us.start())
    try:
        config = two_provider_config(eu, us, route("chat", eu_target(0), us_target(1)))
        sc = start_sidecar(config, {"mistral-eu": KEY, "openai-us": KEY})
        client = openai.OpenAI(base_url=sc.base_url, api_key=CLIENT_KEY, max_retries=0)
        messages: Any = [{"role": "user", "content": PROMPT}]

        # success, streamed success, failover, relayed 4xx, all failing, broken stream
        assert COMPLETION in (
            client.chat.completions.create(model="chat", messages=messages)
            .choices[0]
            .message.content
            or ""
        )
        list(client.chat.completions.create(model="chat", messages=messages, stream=True))
        eu.set_faults([{"kind": "status", "status": 503, "message": PROMPT}])
        client.chat.completions.create(model="chat", messages=messages)
        eu.set_faults([{"kind": "status", "status": 400, "message": f"bad: {PROMPT}"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="chat", messages=messages)
        eu.set_faults([{"kind": "status", "status": 500}], repeat=True)
        us.set_faults([{"kind": "status", "status": 401, "message": f"bad key {KEY}"}])
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="chat", messages=messages)
        eu.set_faults([{"kind": "in_stream_error", "after_chunks": 1, "message": PROMPT}])
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model="chat", messages=messages, stream=True))
        bad_json = ('{"model": "chat", "messages": "' + PROMPT).encode()
        assert sc.raw("POST", "/v1/chat/completions", data=bad_json).status == 400

        # a rejected reload of a config that (wrongly) carries the key
        invalid = sc.metric("aiguillage_config_reloads_total", result="invalid")
        body = orjson.loads(config.sealed().to_json())
        body["providers"]["mistral-eu"]["apiKey"] = KEY
        sc.write_config(orjson.dumps(body))
        wait_for(lambda: sc.metric("aiguillage_config_reloads_total", result="invalid") > invalid)
        records = sc.wait_audit(6)
    finally:
        lt.run(eu.stop())
        lt.run(us.stop())

    # the capture works: the sidecar did log, and did audit, what happened
    logged = server_log(caplog)
    assert "serving config" in logged
    assert "config rejected" in logged
    assert "apiKey" in logged
    assert {r["outcome"] for r in records} >= {"ok", "rejected", "all_targets_failed"}
    out, err = capfd.readouterr()
    audit = sc.audit_path.read_text()
    for secret in SECRETS:
        assert secret not in logged, f"{secret!r} in logs"
        assert secret not in out, f"{secret!r} on stdout"
        assert secret not in err, f"{secret!r} on stderr"
        assert secret not in audit, f"{secret!r} in the audit log"


def test_unknown_model_error_does_not_echo_the_prompt(
    start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    providers = {"p": Provider(api="openai", endpoint="http://p.invalid")}
    sc = start_sidecar(SidecarConfig(namespace="ns", providers=providers))
    resp = sc.raw(
        "POST", "/v1/chat/completions", json={"model": "nope", "messages": [{"content": PROMPT}]}
    )
    assert resp.status == 404
    assert "kumquat" not in resp.body.decode()
    assert "kumquat" not in server_log(caplog)
