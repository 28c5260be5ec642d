"""Config hot reload (``reload.py``): new configs are served, broken ones never are."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar import reload
from aiguillage.sidecar.audit import AuditLog
from aiguillage.sidecar.config import CircuitBreaker, Provider, SidecarConfig, Target
from aiguillage.sidecar.reload import reload_once
from aiguillage.sidecar.server import Runtime
from tests.sidecar.conftest import (
    CREDENTIALS,
    EU_KEY,
    MESSAGES,
    US_KEY,
    US_MODEL,
    RunningSidecar,
    StartSidecar,
    async_wait_for,
    eu_target,
    provider_for,
    route,
    two_provider_config,
    us_target,
    wait_for,
    write_files,
)


def served_models(sc: RunningSidecar) -> list[str]:
    return sorted(m.id for m in sc.client().models.list())


def ask(sc: RunningSidecar, model: str = "chat") -> Any:
    return sc.raw("POST", "/v1/chat/completions", json={"model": model, "messages": MESSAGES})


def test_new_config_is_served_after_the_file_changes(
    sidecar: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    assert served_models(sidecar) == ["chat", "embed"]
    reloads = sidecar.metric("aiguillage_config_reloads_total", result="ok")

    new = sidecar.write_config(
        two_provider_config(eu, us, route("chat", eu_target()), route("summarize", us_target()))
    )

    wait_for(lambda: served_models(sidecar) == ["chat", "summarize"], what="the new routes")
    assert new is not None
    assert new.hash in sidecar.raw("GET", "/readyz").body.decode()
    resp = ask(sidecar, "summarize")
    assert resp.status == 200
    assert resp.headers["x-aiguillage-provider"] == "openai-us"
    assert sidecar.audit_for(resp.headers["x-request-id"])["configHash"] == new.hash
    assert sidecar.metric("aiguillage_config_reloads_total", result="ok") == reloads + 1


def _invalid_json(eu: OpenAISimulator, us: OpenAISimulator, sc: RunningSidecar) -> None:
    sc.write_config(b'{"version": 1, "namespace": "team-a", "routes": {')


def _hash_mismatch(eu: OpenAISimulator, us: OpenAISimulator, sc: RunningSidecar) -> None:
    good = two_provider_config(eu, us, route("chat", us_target()), route("new", us_target()))
    body = orjson.loads(good.sealed().to_json())
    body["hash"] = "0" * 64  # e.g. a partial write of a newer version
    sc.write_config(orjson.dumps(body))


def _missing_credential(eu: OpenAISimulator, us: OpenAISimulator, sc: RunningSidecar) -> None:
    extra = provider_for(us, location="US", jurisdiction="US", credential="not-mounted")
    sc.write_config(
        two_provider_config(
            eu, us, route("chat", us_target()), route("new", us_target()), other=extra
        )
    )


def _schema_error(eu: OpenAISimulator, us: OpenAISimulator, sc: RunningSidecar) -> None:
    body = orjson.loads(two_provider_config(eu, us, route("new", us_target())).to_json())
    body["routes"]["new"]["targets"] = []
    sc.write_config(orjson.dumps(body))


BREAKING: dict[str, Callable[[OpenAISimulator, OpenAISimulator, RunningSidecar], None]] = {
    "invalid-json": _invalid_json,
    "hash-mismatch": _hash_mismatch,
    "missing-credential": _missing_credential,
    "schema-error": _schema_error,
}


@pytest.mark.parametrize("breakage", BREAKING.values(), ids=BREAKING.keys())
def test_broken_config_leaves_the_old_one_serving(
    breakage: Callable[[OpenAISimulator, OpenAISimulator, RunningSidecar], None],
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    old_hash = sidecar.serving_hash()
    invalid = sidecar.metric("aiguillage_config_reloads_total", result="invalid")

    breakage(eu, us, sidecar)

    wait_for(
        lambda: sidecar.metric("aiguillage_config_reloads_total", result="invalid") > invalid,
        what="the broken config to be rejected",
    )
    assert sidecar.serving_hash() == old_hash
    assert sidecar.raw("GET", "/readyz").status == 200
    assert served_models(sidecar) == ["chat", "embed"]
    resp = ask(sidecar)
    assert resp.status == 200
    assert resp.headers["x-aiguillage-provider"] == "mistral-eu"  # the old route
    assert sidecar.audit_for(resp.headers["x-request-id"])["configHash"] == old_hash

    # and a good config afterwards is picked up
    sidecar.write_config(two_provider_config(eu, us, route("fixed", us_target())))
    wait_for(lambda: served_models(sidecar) == ["fixed"], what="the fixed config")


def test_missing_credential_is_served_once_the_secret_is_mounted(
    sidecar: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    invalid = sidecar.metric("aiguillage_config_reloads_total", result="invalid")
    _missing_credential(eu, us, sidecar)
    wait_for(lambda: sidecar.metric("aiguillage_config_reloads_total", result="invalid") > invalid)

    sidecar.write_config(None, {"not-mounted": "sk-x"})  # the Secret gains the key

    wait_for(lambda: served_models(sidecar) == ["chat", "new"], what="the config to load")


def test_credential_rotation_is_picked_up_without_restart(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    assert ask(sidecar).headers["x-aiguillage-provider"] == "mistral-eu"
    eu.api_key = "sk-eu-rotated-0003"

    sidecar.write_config(None, {"mistral-eu": "sk-eu-rotated-0003"})

    wait_for(
        lambda: (
            ask(sidecar).headers.get("x-aiguillage-provider") == "mistral-eu"
            and eu.last_request.headers["authorization"] == "Bearer sk-eu-rotated-0003"
        ),
        what="the rotated key to be used",
    )
    assert EU_KEY not in eu.last_request.headers["authorization"]


def test_becomes_ready_when_a_first_config_appears(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(None)
    assert sc.raw("GET", "/readyz").status == 503

    sc.write_config(two_provider_config(eu, us, route("chat", eu_target())), CREDENTIALS)

    wait_for(lambda: sc.raw("GET", "/readyz").status == 200, what="readiness")
    assert ask(sc).status == 200


def test_circuit_state_survives_a_reload(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, cooldown=60)
    sc = start_sidecar(
        two_provider_config(
            eu, us, route("chat", eu_target(0), us_target(1), circuit_breaker=breaker)
        )
    )
    eu.set_faults([{"kind": "status", "status": 503}])
    assert ask(sc).headers["x-aiguillage-provider"] == "openai-us"  # circuit now open

    sc.write_config(
        two_provider_config(
            eu,
            us,
            route("chat", eu_target(0), us_target(1), circuit_breaker=breaker),
            route("other", us_target()),
        )
    )
    wait_for(lambda: "other" in served_models(sc), what="the reload")

    resp = ask(sc)
    record = sc.audit_for(resp.headers["x-request-id"])
    assert record["attempts"][0]["outcome"] == "skipped_circuit_open"
    assert len(eu.requests) == 1


async def test_in_flight_request_finishes_on_the_config_it_started_with(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(two_provider_config(eu, us, route("chat", eu_target())))
    old_hash = sc.serving_hash()
    eu.set_faults([{"kind": "slow_first_byte", "delay": 1.5}])

    async with sc.async_client() as client:
        in_flight = asyncio.create_task(
            client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
        )
        await async_wait_for(lambda: eu.requests, what="the request to reach mistral-eu")
        new = sc.write_config(two_provider_config(eu, us, route("chat", us_target())))
        assert new is not None
        await async_wait_for(lambda: sc.serving_hash() == new.hash, what="the new config")
        assert not in_flight.done()  # the config really changed under the request
        raw = await in_flight

        assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
        assert raw.parse().choices[0].message.content == (
            "Hello from mistral-eu! This is a simulated answer."
        )
        record = sc.audit_for(raw.headers["x-request-id"])
        assert record["configHash"] == old_hash

        after = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    assert after.headers["x-aiguillage-provider"] == "openai-us"
    assert us.last_request.body["model"] == US_MODEL
    assert len(eu.requests) == 1


# -- reload_once itself ----------------------------------------------------------------------------


def test_a_rejected_config_is_not_reparsed_until_it_changes(tmp_path: Path) -> None:
    cfg, creds = tmp_path / "config", tmp_path / "credentials"
    write_files(cfg, creds, b"{not json", {})
    rt = Runtime(audit=AuditLog(str(tmp_path / "audit.jsonl")))

    assert reload_once(rt, cfg, creds) is False
    assert reload_once(rt, cfg, creds) is False
    assert rt.metrics.counters["aiguillage_config_reloads_total"][(("result", "invalid"),)] == 1
    assert rt.snapshot is None

    good = SidecarConfig(
        namespace="ns",
        providers={"p": Provider(api="openai", endpoint="http://p.invalid")},
        routes={"chat": route("chat", Target(provider="p", model="m"))},
    )
    write_files(cfg, creds, good, {})
    assert reload_once(rt, cfg, creds) is True
    assert reload_once(rt, cfg, creds) is False  # unchanged files: nothing to do
    assert rt.snapshot is not None
    assert rt.metrics.counters["aiguillage_config_reloads_total"][(("result", "ok"),)] == 1
    rt.audit.close()


# -- a bad provider, a failing reload ---------------------------------------------------------


def test_a_provider_with_an_unusable_credential_takes_only_itself_out(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator, tmp_path: Path
) -> None:
    # Present before the sidecar starts: it used to crash at start-up.
    bad = tmp_path / "sidecar0" / "credentials" / "openai-us"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xfe not text \r\n")
    sc = start_sidecar(
        two_provider_config(
            eu, us, route("chat", eu_target(0), us_target(1)), route("us-only", us_target())
        ),
        {"mistral-eu": EU_KEY},
    )

    assert sc.raw("GET", "/readyz").status == 200
    assert ask(sc).headers["x-aiguillage-provider"] == "mistral-eu"
    resp = ask(sc, "us-only")
    assert resp.status == 502
    attempt = sc.audit_for(resp.headers["x-request-id"])["attempts"][0]
    assert attempt["outcome"] == "skipped_provider_invalid"
    assert attempt["detail"] == (
        'provider "openai-us": credential file "openai-us" is not UTF-8 text '
        "(invalid byte at offset 0)"
    )
    assert us.requests == []
    assert sc.metric("aiguillage_config_providers_unusable", provider="openai-us") == 1

    sc.write_config(None, {"openai-us": US_KEY})  # the Secret is fixed

    wait_for(lambda: ask(sc, "us-only").status == 200, what="openai-us to serve again")
    assert "aiguillage_config_providers_unusable{" not in sc.metrics()


def test_the_reload_loop_survives_any_exception(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(config_dir: Path, credentials_dir: Path) -> Any:
        raise RuntimeError("unexpected, quoting sk-do-not-log")

    monkeypatch.setattr(reload, "load", broken)
    old_hash = sidecar.serving_hash()
    sidecar.write_config(two_provider_config(eu, us, route("next", us_target())))
    wait_for(
        lambda: sidecar.metric("aiguillage_config_reloads_total", result="error") == 1,
        what="the failed reload to be counted",
    )
    assert sidecar.serving_hash() == old_hash
    assert sidecar.raw("GET", "/readyz").status == 200
    assert "RuntimeError" in caplog.text
    assert "sk-do-not-log" not in caplog.text

    monkeypatch.undo()
    sidecar.write_config(two_provider_config(eu, us, route("fixed", us_target())))
    wait_for(lambda: served_models(sidecar) == ["fixed"], what="the loop to apply a later change")


def test_readyz_fails_once_the_watcher_has_stopped(sidecar: RunningSidecar) -> None:
    assert sidecar.raw("GET", "/readyz").status == 200
    watcher = sidecar.runtime.watcher
    assert watcher is not None

    async def stop_it() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    sidecar.lt.run(stop_it())

    resp = sidecar.raw("GET", "/readyz")
    assert resp.status == 503
    assert resp.body == b"config watcher stopped: changes are not applied\n"
