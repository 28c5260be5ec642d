"""Loading a config directory and its credentials into a snapshot (``loader.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from aiguillage.sidecar.adapters import UnsupportedApi
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
