"""The audit signing keys: one Ed25519 key pair per namespace, made by the operator.

For every namespace it writes a config for, the operator makes sure a Secret
:data:`SIGNING_SECRET` exists there, holding a private key (:data:`SIGNING_KEY_FILE`,
PKCS#8 PEM) that the injected sidecars mount to sign their audit checkpoints. It is created
once and never rewritten: a key that changed under running sidecars would only make their
older checkpoints harder to check. To rotate, delete the Secret; a new key is made, and
pods started afterwards use it.

Each namespace's public key is published in the ConfigMap :data:`PUBLIC_KEYS_CONFIG_MAP` in
the operator's own namespace, under ``<namespace>.<key id>.pem``; keys are only ever added
there (a rotated key still verifies the trail it signed). Auditors give that ConfigMap to
``aiguillage audit verify --public-key``, which also checks that each chain's records claim
the namespace whose key signs them.

Honest limit: whoever may create pods in a namespace can mount its Secret and sign as that
namespace's sidecars. The chain still proves, to anyone holding only the public keys, that
what was sealed has not been edited, removed, inserted or reordered since by anyone without
that key, such as whoever runs the log pipeline or the log store, and that no namespace
signed records for another.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from aiguillage.operator import kube as k
from aiguillage.sidecar.auditchain import DEFAULT_KEY_FILE, key_id

SIGNING_SECRET = "aiguillage-audit-key"
SIGNING_KEY_FILE = DEFAULT_KEY_FILE.rsplit("/", 1)[1]  # the file name the sidecar looks for
SIGNING_KEY_DIR = DEFAULT_KEY_FILE.rsplit("/", 1)[0]  # where the injection mounts the Secret
PUBLIC_KEYS_CONFIG_MAP = "aiguillage-audit-keys"
COMPONENT = {"app.kubernetes.io/component": "audit-signing"}

log = logging.getLogger("aiguillage.operator")


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes
    key_id: str


def new_key_pair() -> KeyPair:
    private = Ed25519PrivateKey.generate()
    return _pair(private)


def _pair(private: Ed25519PrivateKey) -> KeyPair:
    public = private.public_key()
    return KeyPair(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        _id(public),
    )


def _id(public: Ed25519PublicKey) -> str:
    return key_id(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def pair_of(private_pem: bytes) -> KeyPair | None:
    """The key pair of a stored private key; None if it is not an Ed25519 PEM key."""
    try:
        private = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError):
        return None
    return _pair(private) if isinstance(private, Ed25519PrivateKey) else None


def public_entry(namespace: str, pair: KeyPair) -> tuple[str, str]:
    """The ConfigMap key and value publishing a namespace's public key."""
    return f"{namespace}.{pair.key_id}.pem", pair.public_pem.decode()


@dataclass
class AuditKeys:
    """Makes sure each namespace the operator writes a config for has its signing key, and
    that its public key is published. Called by the reconciler after each write; a namespace
    is checked once per operator process (the Secret is never rewritten once valid)."""

    kube: Any  # aiguillage.operator.kube.Kube (or a test's stand-in)
    operator_namespace: str
    _done: set[str] = field(default_factory=set)
    _published: dict[str, str] | None = None  # the ConfigMap's data as last read or written
    # The ConfigMap is read, extended and written back: one namespace at a time.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ensure(self, namespace: str) -> None:
        if namespace in self._done:
            return
        async with self._lock:
            if namespace in self._done:
                return
            pair = await self._key_of(namespace)
            name, pem = public_entry(namespace, pair)
            if self._published is None:
                self._published = (
                    await self.kube.read_config_map(self.operator_namespace, PUBLIC_KEYS_CONFIG_MAP)
                    or {}
                )
            if self._published.get(name) != pem:
                published = {**self._published, name: pem}
                meta = {"labels": {**k.MANAGED_BY, **COMPONENT}}
                await self.kube.apply_config_map(
                    self.operator_namespace, PUBLIC_KEYS_CONFIG_MAP, published, meta
                )
                self._published = published
                log.info("published audit key %s of namespace %s", pair.key_id, namespace)
            self._done.add(namespace)

    async def _key_of(self, namespace: str) -> KeyPair:
        data = await k.read_secret_data(self.kube, namespace, SIGNING_SECRET)
        stored = (data or {}).get(SIGNING_KEY_FILE)
        pair = None
        if stored is not None:
            try:
                pair = pair_of(base64.b64decode(stored, validate=True))
            except (binascii.Error, ValueError):
                pair = None
        if pair is not None:
            return pair
        if data is not None:
            log.warning(
                "namespace %s: Secret %s holds no Ed25519 private key in %s: replacing it "
                "with a new key (pods started from now on sign with it)",
                namespace,
                SIGNING_SECRET,
                SIGNING_KEY_FILE,
            )
        pair = new_key_pair()
        await self.kube.apply_secret(
            namespace,
            SIGNING_SECRET,
            {SIGNING_KEY_FILE: base64.b64encode(pair.private_pem).decode()},
            {"labels": {**k.MANAGED_BY, **COMPONENT}},
        )
        log.info("namespace %s: made audit signing key %s", namespace, pair.key_id)
        return pair
