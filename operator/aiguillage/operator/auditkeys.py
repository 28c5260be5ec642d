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

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from aiguillage.sidecar.auditchain import DEFAULT_KEY_FILE, key_id

SIGNING_SECRET = "aiguillage-audit-key"
SIGNING_KEY_FILE = DEFAULT_KEY_FILE.rsplit("/", 1)[1]  # the file name the sidecar looks for
SIGNING_KEY_DIR = DEFAULT_KEY_FILE.rsplit("/", 1)[0]  # where the injection mounts the Secret
PUBLIC_KEYS_CONFIG_MAP = "aiguillage-audit-keys"


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
