"""The public keys audit checkpoints are checked against.

``--public-key`` takes, as often as needed:

- a PEM file holding one or more Ed25519 public keys;
- a directory: every ``*.pem`` and ``*.pub`` file in it (such as the operator's ConfigMap
  mounted as files);
- a Kubernetes ConfigMap (or a List of them) saved as YAML or JSON
  (``kubectl get configmap aiguillage-audit-keys -n aiguillage-system -o yaml``), each data
  value a PEM public key.

A key named ``<namespace>.<key id>.pem`` (how the operator names them) belongs to that
namespace: a chain whose records claim another namespace but whose checkpoints are signed
with it is broken (a pod can read its own namespace's signing key, not another one's). The
key id in such a name must be the key's own id, or the input is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aiguillage.operator.yamlfiles import UnreadableFile, load_documents, read_text
from aiguillage.sidecar.auditchain import key_id

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)
NAMED = re.compile(r"^(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<kid>[0-9a-f]{16})\.pem$")


class BadKeys(Exception):
    """Key input that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    key: Ed25519PublicKey
    namespace: str | None  # the namespace it was issued for, when its name says
    source: str  # where it was read from, for messages

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


KeyRing = dict[str, PublicKey]


def load(paths: Iterable[Path]) -> KeyRing:
    ring: KeyRing = {}
    for path in paths:
        for key in _from_path(path):
            known = ring.get(key.key_id)
            if known is not None and known.namespace and key.namespace != known.namespace:
                raise BadKeys(
                    f"{key.source}: key {key.key_id} is also given for namespace "
                    f"{known.namespace} ({known.source}); a key belongs to one namespace"
                )
            if known is None or known.namespace is None:
                ring[key.key_id] = key
    return ring


def _from_path(path: Path) -> list[PublicKey]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pem", ".pub") and p.is_file())
        if not files:
            raise BadKeys(f"{path}: directory holds no *.pem or *.pub file")
        return [key for f in files for key in _from_path(f)]
    try:
        text = read_text(path)
    except OSError as exc:
        raise BadKeys(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnreadableFile as exc:
        raise BadKeys(f"{path}: {exc}") from None
    if text.lstrip().startswith("-----BEGIN"):
        return _pems(text.encode(), path.name, str(path))
    return _config_maps(text, path)


def _pems(data: bytes, name: str, source: str) -> list[PublicKey]:
    blocks = _PEM.findall(data)
    if not blocks:
        raise BadKeys(f"{source}: no PEM public key (-----BEGIN PUBLIC KEY-----) in it")
    named = NAMED.match(name)
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise BadKeys(f"{source}: not a readable PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKeys(f"{source}: a {type(key).__name__}, not an Ed25519 public key")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kid = key_id(raw)
        if named and named.group("kid") != kid:
            raise BadKeys(
                f"{source}: named for key id {named.group('kid')}, but the key's id is {kid}"
            )
        keys.append(PublicKey(kid, key, named.group("namespace") if named else None, source))
    return keys


def _config_maps(text: str, path: Path) -> list[PublicKey]:
    try:
        docs = [d for d in load_documents(text) if d is not None]
    except UnreadableFile as exc:
        raise BadKeys(f"{path}: neither PEM nor a ConfigMap in YAML/JSON: {exc}") from None
    maps: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            maps.extend(doc["items"])  # kubectl get -o yaml of several: a List
        else:
            maps.append(doc)
    keys: list[PublicKey] = []
    for index, cm in enumerate(maps):
        if not isinstance(cm, dict) or cm.get("kind") != "ConfigMap":
            raise BadKeys(f"{path}: item {index} is not a ConfigMap; expected PEM or ConfigMaps")
        cm_name = (cm.get("metadata") or {}).get("name", f"item {index}")
        data_map = cm.get("data") or {}
        if not isinstance(data_map, dict):
            raise BadKeys(f"{path}: ConfigMap {cm_name}: data is not a mapping")
        for name, value in sorted(data_map.items()):
            if not isinstance(value, str):
                raise BadKeys(f"{path}: ConfigMap {cm_name}: data.{name} is not a string")
            keys.extend(_pems(value.encode(), str(name), f"{path}: ConfigMap {cm_name} {name}"))
    if not keys:
        raise BadKeys(f"{path}: no public key in it")
    return keys
