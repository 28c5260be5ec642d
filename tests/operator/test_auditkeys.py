"""``auditkeys.py``: one signing key per namespace, made once, published for auditors."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aiguillage.operator import kube as k
from aiguillage.operator.auditkeys import (
    PUBLIC_KEYS_CONFIG_MAP,
    SIGNING_KEY_FILE,
    SIGNING_SECRET,
    AuditKeys,
    new_key_pair,
    pair_of,
)

OPERATOR_NS = "aiguillage-system"


class Store:
    """Secrets and ConfigMaps by (namespace, name), and the writes made."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self.writes: list[tuple[str, str, str]] = []

    async def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        await asyncio.sleep(0)
        found = self.config_maps.get((namespace, name))
        return None if found is None else dict(found)

    async def apply_config_map(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        await asyncio.sleep(0)
        self.writes.append(("configmap", namespace, name))
        self.config_maps[(namespace, name)] = dict(data)

    async def apply_secret(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        await asyncio.sleep(0)
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "aiguillage"
        self.writes.append(("secret", namespace, name))
        self.secrets[(namespace, name)] = dict(data)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    s = Store()

    async def read_secret_data(_: Any, namespace: str, name: str) -> dict[str, str] | None:
        return s.secrets.get((namespace, name))

    monkeypatch.setattr(k, "read_secret_data", read_secret_data)
    return s


def private_key(store: Store, namespace: str) -> Ed25519PrivateKey:
    pem = base64.b64decode(store.secrets[(namespace, SIGNING_SECRET)][SIGNING_KEY_FILE])
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def published(store: Store) -> dict[str, str]:
    return store.config_maps[(OPERATOR_NS, PUBLIC_KEYS_CONFIG_MAP)]


async def test_a_namespace_gets_a_key_whose_public_half_is_published(store: Store) -> None:
    keys = AuditKeys(store, OPERATOR_NS)
    await keys.ensure("support")
    private = private_key(store, "support")
    (name,) = published(store)
    assert name.startswith("support.")
    assert name.endswith(".pem")
    public = serialization.load_pem_public_key(published(store)[name].encode())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(private.sign(b"checkpoint"), b"checkpoint")  # the two halves of one key


async def test_a_valid_key_is_never_rewritten(store: Store) -> None:
    await AuditKeys(store, OPERATOR_NS).ensure("support")
    first = dict(store.secrets[("support", SIGNING_SECRET)])
    store.writes.clear()
    restarted = AuditKeys(store, OPERATOR_NS)  # a new operator process
    await restarted.ensure("support")
    await restarted.ensure("support")
    assert store.secrets[("support", SIGNING_SECRET)] == first
    assert store.writes == []


async def test_an_unusable_key_is_replaced_and_old_public_keys_stay(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await AuditKeys(store, OPERATOR_NS).ensure("support")
    old_names = set(published(store))
    store.secrets[("support", SIGNING_SECRET)] = {SIGNING_KEY_FILE: "bm90IGEga2V5"}  # "not a key"
    with caplog.at_level(logging.WARNING):
        await AuditKeys(store, OPERATOR_NS).ensure("support")
    assert "holds no Ed25519 private key" in caplog.text
    assert pair_of(base64.b64decode(store.secrets[("support", SIGNING_SECRET)][SIGNING_KEY_FILE]))
    assert old_names < set(published(store))  # the rotated-out key still verifies old trails


async def test_many_namespaces_at_once_are_all_published(store: Store) -> None:
    keys = AuditKeys(store, OPERATOR_NS)
    namespaces = [f"team-{i}" for i in range(20)]
    await asyncio.gather(*(keys.ensure(ns) for ns in namespaces))
    assert sorted(name.split(".")[0] for name in published(store)) == sorted(namespaces)


async def test_keys_published_by_another_operator_are_kept(store: Store) -> None:
    other = new_key_pair()
    store.config_maps[(OPERATOR_NS, PUBLIC_KEYS_CONFIG_MAP)] = {
        f"finance.{other.key_id}.pem": other.public_pem.decode()
    }
    await AuditKeys(store, OPERATOR_NS).ensure("support")
    assert f"finance.{other.key_id}.pem" in published(store)
