"""Loading a config directory and its credentials into a snapshot (``loader.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from aiguillage.sidecar.adapters import Adapter, InvalidProvider, UnsupportedApi, adapter_for
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.config import Provider, Route, SidecarConfig, Target
from aiguillage.sidecar.errors import ConfigError
from aiguillage.sidecar.loader import fingerprint, load


def config(**providers: Provider) -> SidecarConfig:
    providers = providers or {
        "eu": Provider(
            api="openai", endpoint="http://eu.invalid/v1", location="FR", credential="eu.key"
        )
    }
    name = next(iter(providers))
    return SidecarConfig(
        namespace="ns",
        providers=providers,
        routes={"chat": Route(name="chat", targets=(Target(provider=name, model="m"),))},
    )


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    cfg, creds = tmp_path / "config", tmp_path / "credentials"
    cfg.mkdir()
    creds.mkdir()
    (creds / "eu.key").write_text("sk-eu-0001\n")
    return cfg, creds


def write(cfg: Path, data: SidecarConfig | bytes) -> None:
    raw = data.sealed().to_json() if isinstance(data, SidecarConfig) else data
    (cfg / "config.json").write_bytes(raw)


def test_loads_config_and_credentials(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, config())

    snap = load(cfg, creds)

    assert snap.config.routes["chat"].targets[0].provider == "eu"
    assert snap.config.hash == config().content_hash()
    adapter = snap.adapters["eu"]
    assert not isinstance(adapter, UnsupportedApi)
    request = adapter.build(Call(Operation.CHAT, {"model": "chat", "messages": []}, False), "m")
    assert request.headers["authorization"] == "Bearer sk-eu-0001"  # newline stripped


def test_provider_without_credential_sends_no_auth(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, config(local=Provider(api="openai", endpoint="http://vllm.invalid/v1")))

    adapter = load(cfg, creds).adapters["local"]

    assert not isinstance(adapter, UnsupportedApi)
    request = adapter.build(Call(Operation.CHAT, {"messages": []}, False), "m")
    assert "authorization" not in request.headers


def test_unhashed_config_is_accepted(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, config().to_json())

    assert load(cfg, creds).config.hash == ""


def test_missing_config_file(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    with pytest.raises(ConfigError, match=r"config\.json: cannot read"):
        load(cfg, creds)


def test_invalid_json(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, b'{"version": 1, "namespace": ')
    with pytest.raises(ConfigError, match=r"config\.json"):
        load(cfg, creds)


def test_schema_error_names_the_field(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    body = orjson.loads(config().to_json())
    body["routes"]["chat"]["targets"] = []
    write(cfg, orjson.dumps(body))

    with pytest.raises(ConfigError, match=r"routes\.chat\.targets"):
        load(cfg, creds)


def test_unknown_field_is_rejected(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    body = orjson.loads(config().to_json())
    body["providers"]["eu"]["apiKey"] = "sk-should-never-be-here"
    write(cfg, orjson.dumps(body))

    with pytest.raises(ConfigError, match=r"providers\.eu\.apiKey") as caught:
        load(cfg, creds)
    assert "sk-should-never-be-here" not in str(caught.value)


def test_hash_mismatch_is_rejected(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    body = orjson.loads(config().sealed().to_json())
    body["routes"]["chat"]["targets"][0]["model"] = "tampered"
    write(cfg, orjson.dumps(body))

    with pytest.raises(ConfigError, match="does not match its hash"):
        load(cfg, creds)


def test_route_naming_an_unknown_provider(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    bad = config().model_copy(
        update={"routes": {"chat": Route(name="chat", targets=(Target(provider="x", model="m"),))}}
    )
    write(cfg, bad)

    with pytest.raises(ConfigError, match=r'routes\.chat: provider "x" is not in providers'):
        load(cfg, creds)


def test_missing_credential_names_file_and_provider(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    os.remove(creds / "eu.key")
    write(cfg, config())

    with pytest.raises(ConfigError, match=r'eu\.key: credential of provider "eu"'):
        load(cfg, creds)


def test_unsupported_api_is_kept_as_the_reason(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, config(odd=Provider(api="carrier-pigeon", endpoint="http://x.invalid")))

    reason = load(cfg, creds).adapters["odd"]

    assert isinstance(reason, UnsupportedApi)
    assert 'unsupported api "carrier-pigeon"' in str(reason)
    assert "openai" in str(reason)


def test_fingerprint_follows_files_in_both_directories(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    write(cfg, config())
    before = fingerprint(cfg, creds)
    (cfg / ".hidden.tmp").write_text("ignored")
    assert fingerprint(cfg, creds) == before

    (creds / "eu.key").write_text("sk-eu-0002-rotated\n")
    after = fingerprint(cfg, creds)
    assert after != before
    assert {name for name, _, _ in after} == {"config/config.json", "credentials/eu.key"}


def test_fingerprint_of_missing_directories_is_empty(tmp_path: Path) -> None:
    assert fingerprint(tmp_path / "nope", tmp_path / "neither") == ()


# -- one bad provider takes only itself out --------------------------------------------------


def two_providers() -> SidecarConfig:
    eu = Provider(api="openai", endpoint="http://eu.invalid/v1", location="FR", credential="eu.key")
    bad = Provider(api="openai", endpoint="http://bad.invalid/v1", location="FR", credential="bad")
    return SidecarConfig(
        namespace="ns",
        providers={"eu": eu, "bad": bad},
        routes={
            "chat": Route(name="chat", targets=(Target(provider="eu", model="m"),)),
            "other": Route(name="other", targets=(Target(provider="bad", model="m"),)),
        },
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfesk-\x00k\x00e\x00y", "is not UTF-8 text (invalid byte at offset 0)"),
        (b"sk-abc\r\nX-Injected: yes\n", "contains a control character (CR) at offset 6"),
        (b"sk-abc\x00def", "contains a control character (NUL) at offset 6"),
        ("sk-clé".encode(), "contains a non-ASCII character at offset 5"),
        (b"\n\n", "is empty"),
        (b"k" * 70_000, "is larger than 65536 bytes"),
    ],
)
def test_an_unusable_credential_takes_out_its_provider_only(
    dirs: tuple[Path, Path], content: bytes, reason: str
) -> None:
    cfg, creds = dirs
    (creds / "bad").write_bytes(content)
    write(cfg, two_providers())

    snap = load(cfg, creds)

    assert isinstance(snap.adapters["eu"], Adapter)
    bad = snap.adapters["bad"]
    assert isinstance(bad, InvalidProvider)
    assert str(bad) == f'provider "bad": credential file "bad" {reason}'
    assert snap.unusable == {"bad": str(bad)}
    assert set(snap.config.routes) == {"chat", "other"}  # the route stays, its target is skipped


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        (
            Provider(api="vertex-ai", endpoint="https://europe-west4-aiplatform.googleapis.com"),
            "options.project: is required for api vertex-ai",
        ),
        (
            Provider(api="bedrock", endpoint="https://bedrock.example.internal"),
            "options.region: is required for api bedrock (the endpoint is not "
            "bedrock-runtime.<region>.amazonaws.com)",
        ),
        (
            Provider(api="azure-openai", endpoint="https://x.invalid", options={"apiversion": "1"}),
            "options.apiversion: is not an option of api azure-openai (it takes: apiVersion)",
        ),
        (
            Provider(api="azure-openai", endpoint="https://x.invalid", options={"apiVersion": "v"}),
            "options.apiVersion: must be an API version such as 2024-10-21",
        ),
        (
            Provider(api="openai", endpoint="https://x.invalid/v1", options={"region": "eu"}),
            "options.region: is not an option of api openai (it takes: none)",
        ),
        (
            Provider(api="openai", endpoint="not a url"),
            "endpoint: must be an http:// or https:// URL with a host",
        ),
    ],
)
def test_bad_options_take_out_their_provider_only(
    dirs: tuple[Path, Path], provider: Provider, reason: str
) -> None:
    cfg, creds = dirs
    config = two_providers()
    (creds / "bad").write_text("token\n")
    write(cfg, config.model_copy(update={"providers": {**config.providers, "bad": provider}}))

    snap = load(cfg, creds)

    assert isinstance(snap.adapters["eu"], Adapter)
    assert str(snap.adapters["bad"]) == f'provider "bad": {reason}'
    assert isinstance(snap.adapters["bad"], InvalidProvider)


def test_aws_keys_with_escaped_control_characters_are_unusable(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    config = two_providers()
    bedrock = Provider(
        api="bedrock", endpoint="https://bedrock-runtime.eu-west-3.amazonaws.com", credential="bad"
    )
    (creds / "bad").write_bytes(orjson.dumps({"accessKeyId": "AK\nID", "secretAccessKey": "s"}))
    write(cfg, config.model_copy(update={"providers": {**config.providers, "bad": bedrock}}))

    reason = str(load(cfg, creds).adapters["bad"])

    assert reason.endswith('"accessKeyId" contains a control character (LF) at offset 2')
    assert "AK" not in reason


def test_an_adapter_crashing_at_start_takes_out_its_provider_only(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, creds = dirs
    (creds / "bad").write_text("sk-secret-value\n")
    config = two_providers()
    gemini = Provider(api="gemini", endpoint="https://g.invalid", credential="bad")
    write(cfg, config.model_copy(update={"providers": {**config.providers, "bad": gemini}}))

    def boom(self: Any, provider: Provider, credential: str | None) -> None:
        raise ValueError(f"cannot use {credential}")

    monkeypatch.setattr(adapter_for("gemini"), "__init__", boom)
    snap = load(cfg, creds)

    assert str(snap.adapters["bad"]) == 'provider "bad": adapter failed to start (ValueError)'
    assert isinstance(snap.adapters["eu"], Adapter)


# -- where targets run -----------------------------------------------------------------------


def test_locations_are_derived_from_endpoints_and_model_ids(dirs: tuple[Path, Path]) -> None:
    cfg, creds = dirs
    (creds / "aws").write_text('{"accessKeyId": "AKID", "secretAccessKey": "s"}')
    bedrock = Provider(
        api="bedrock",
        endpoint="https://bedrock-runtime.us-east-1.amazonaws.com",
        location="FR",  # contradicted by the endpoint: US is what is checked
        credential="aws",
    )
    targets = (
        Target(provider="aws", model="anthropic.claude-3-haiku-20240307-v1:0"),
        Target(provider="aws", model="eu.anthropic.claude-3-haiku-20240307-v1:0", priority=1),
    )
    write(
        cfg,
        SidecarConfig(
            namespace="ns",
            providers={"aws": bedrock},
            routes={"chat": Route(name="chat", targets=targets)},
        ),
    )

    snap = load(cfg, creds)

    provider = snap.config.providers["aws"]
    assert provider.location == "US"
    loaded = snap.config.routes["chat"].targets
    assert [t.where(provider) for t in loaded] == ["US", "EU"]
    assert snap.config.routes["chat"].rule.complies(loaded[1].where(provider), None)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "a/b"])
def test_a_credential_outside_the_credentials_directory_is_never_read(
    dirs: tuple[Path, Path], name: str
) -> None:
    cfg, creds = dirs
    body = orjson.loads(config().to_json())
    body["providers"]["eu"]["credential"] = name
    write(cfg, orjson.dumps(body))
    with pytest.raises(ConfigError, match=r"providers\.eu\.credential: String should match"):
        load(cfg, creds)


def test_data_protection_rules_are_compiled_when_loaded(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiguillage.sidecar.privacy import engine
    from aiguillage.sidecar.privacy.errors import RulesError
    from aiguillage.sidecar.privacy.rules import DataProtectionRules

    cfg, creds = dirs
    rules = DataProtectionRules.model_validate(
        {"rules": [{"categories": ["email"], "action": "redact"}]}
    )
    base = config()
    chat = base.routes["chat"].model_copy(update={"data_protection": rules})
    write(cfg, base.model_copy(update={"routes": {"chat": chat}}))

    compiled = load(cfg, creds).config.routes["chat"]
    # Compiled now, not by the first request that needs it.
    assert "protection" in vars(compiled)
    assert compiled.protection is not None
    assert compiled.protection.find("to a@b.eu")[0].category == "email"

    def refuse(rules: DataProtectionRules) -> list[Any]:
        raise RulesError("phoneRegions: 'XX' is not a region")

    monkeypatch.setattr(engine, "detectors_for", refuse)
    with pytest.raises(ConfigError, match=r"routes\.chat\.dataProtection: phoneRegions: 'XX'"):
        load(cfg, creds)
