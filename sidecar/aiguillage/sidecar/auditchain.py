"""The hash chain and signed checkpoints that make one sidecar's audit trail tamper-evident.

Every line a sidecar writes to its audit trail starts with three fields::

    {"chain":"support/app-7d9f/3fa85f64a1b2","seq":42,"prev":"<sha256 hex>", ...record...}

- ``chain`` names this sidecar process: its namespace and pod, and 48 random bits drawn at
  start (a restarted container starts a new chain);
- ``seq`` counts the chain's lines from 1, with no gap;
- ``prev`` is the SHA-256 of the previous line's exact bytes (without its newline), or
  :data:`GENESIS` for line 1. Hashing bytes rather than parsed JSON makes the chain immune
  to how a log pipeline or a verifier would re-serialise the JSON: a line is intact iff its
  bytes are.

Every ``every_records`` records or ``every_seconds`` seconds (whichever comes first, and
once more when the sidecar stops cleanly) a *checkpoint* line joins the chain::

    {"chain":...,"seq":43,"prev":"<hash of line 42>","kind":"checkpoint","time":...,
     "records":42,"final":false,"keyId":"<16 hex>","sig":"<base64 Ed25519 signature>"}

The signature covers :data:`CHECKPOINT_DOMAIN` followed by the line's bytes up to (not
including) ``,"sig":``, closed by ``}``; so it seals the chain's name, the checkpoint's
sequence number and, through ``prev``, every line before it. Whoever holds only the public
key can check that nothing up to a checkpoint was edited, removed, inserted or reordered;
lines after the last checkpoint are not sealed yet.

The signing key is an Ed25519 private key (PKCS#8 PEM) in a file, mounted from a Secret
(``AIGUILLAGE_AUDIT_KEY``, default :data:`DEFAULT_KEY_FILE`); without one, checkpoints are
written unsigned (``"keyId":null,"sig":null``) and say so. The key is read when the first
checkpoint is due and again whenever the file changes, never on a request's path.

Cost per record: one SHA-256 of the record's line (about 1 KB) and a few bytes of formatting
(see docs/audit.md for the measurement), done by :class:`~aiguillage.sidecar.audit.AuditLog`
with the record's batch, off the request's path, as are checkpoints and their signatures.

The verifier (``aiguillage audit verify``) imports :data:`GENESIS`, :func:`line_hash` and
:func:`signed_part` from here, so the sidecar and the verifier cannot disagree on the format.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from aiguillage.sidecar import log

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GENESIS = "0" * 64  # the "prev" of a chain's first line
CHECKPOINT_DOMAIN = b"aiguillage-audit-checkpoint-v1\n"
SIG_FIELD = b',"sig":'
DEFAULT_KEY_FILE = "/etc/aiguillage/audit-key/signing-key.pem"
EVERY_RECORDS = 1000
EVERY_SECONDS = 60.0


def line_hash(line: bytes) -> str:
    """The ``prev`` the line after ``line`` carries."""
    return hashlib.sha256(line).hexdigest()


def signed_part(line: bytes) -> bytes | None:
    """What a checkpoint's signature covers; None when ``line`` has no ``sig`` field last."""
    cut = line.rfind(SIG_FIELD)
    if cut < 0:
        return None
    return CHECKPOINT_DOMAIN + line[:cut] + b"}"


def key_id(public_raw: bytes) -> str:
    """A public key's short name: the first 16 hex digits of the SHA-256 of its 32 bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


class SigningKey:
    """The Ed25519 private key in a file, read again whenever the file changes.

    ``cryptography`` is imported only when a key file exists (it weighs a few MB)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._key: Ed25519PrivateKey | None = None
        self.key_id: str | None = None
        self._complained: str | None = None

    def current(self) -> Ed25519PrivateKey | None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._forget(f"cannot be read ({type(exc).__name__})")
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._load()
        return self._key

    def _load(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(Path(self.path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            self._forget(f"is not a PEM private key ({type(exc).__name__})")
            return
        if not isinstance(key, Ed25519PrivateKey):
            self._forget(f"holds a {type(key).__name__}, not an Ed25519 private key")
            return
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key, self.key_id, self._complained = key, key_id(raw), None
        log.server.info("audit checkpoints are signed with key %s (%s)", self.key_id, self.path)

    def _forget(self, why: str) -> None:
        self._key = self.key_id = None
        if self._complained != why:  # say it once per cause, not at every checkpoint
            self._complained = why
            log.server.warning(
                "audit signing key %s %s: checkpoints are written unsigned", self.path, why
            )


@dataclass(frozen=True)
class ChainSettings:
    """Where the key is and how often to checkpoint (environment, or tests)."""

    key_file: str = DEFAULT_KEY_FILE
    every_records: int = EVERY_RECORDS
    every_seconds: float = EVERY_SECONDS

    @classmethod
    def from_environment(cls) -> ChainSettings:
        """``AIGUILLAGE_AUDIT_KEY``, ``AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS`` and
        ``AIGUILLAGE_AUDIT_CHECKPOINT_SECONDS``; a bad number stops the sidecar with a message."""
        env = os.environ
        return cls(
            key_file=env.get("AIGUILLAGE_AUDIT_KEY") or DEFAULT_KEY_FILE,
            every_records=int(
                _positive("AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS", EVERY_RECORDS, integer=True)
            ),
            every_seconds=_positive("AIGUILLAGE_AUDIT_CHECKPOINT_SECONDS", EVERY_SECONDS),
        )


def _positive(variable: str, default: float, integer: bool = False) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise SystemExit(f"{variable}={text!r}: expected {kind} > 0") from None
    if value <= 0:
        raise SystemExit(f"{variable}={text!r}: expected a value > 0")
    return value


def chain_name(namespace: str, pod: str) -> str:
    """``<namespace>/<pod>/<12 random hex>``: unique per process start."""
    return f"{namespace or '-'}/{pod or socket.gethostname()}/{secrets.token_hex(6)}"


class AuditChain:
    """The chain state of one sidecar process: links lines and makes checkpoints."""

    def __init__(self, name: str, settings: ChainSettings | None = None) -> None:
        self.settings = settings or ChainSettings()
        self.name = name
        self.seq = 0
        self._prev = GENESIS.encode()  # hex of the last line's SHA-256
        self.unsealed = 0  # records linked since the last checkpoint
        self.records = 0  # records linked in all
        self.checkpoints = 0
        self.key = SigningKey(self.settings.key_file)
        self._head = b'{"chain":' + orjson.dumps(name) + b',"seq":'

    @property
    def prev(self) -> str:
        """The ``prev`` the next line will carry."""
        return self._prev.decode()

    def link(self, record_json: bytes) -> bytes:
        """The record's line in the chain (no newline): ``record_json`` is a JSON object."""
        self.seq += 1
        line = b"".join(
            (self._head, b"%d" % self.seq, b',"prev":"', self._prev, b'",', record_json[1:])
        )
        self._prev = hashlib.sha256(line).hexdigest().encode()
        self.unsealed += 1
        self.records += 1
        return line

    @property
    def due(self) -> bool:
        """Enough records since the last checkpoint to make one now."""
        return self.unsealed >= self.settings.every_records

    def checkpoint(self, final: bool = False) -> bytes:
        """A checkpoint line sealing every line before it (signed when a key is mounted)."""
        self.seq += 1
        unsigned = b'%b%d,"prev":"%b","kind":"checkpoint","time":%b,' % (
            self._head,
            self.seq,
            self._prev,
            orjson.dumps(round(time.time(), 6)),
        )
        key = self.key.current()
        body = unsigned + b'"records":%d,"final":%b,"keyId":%b' % (
            self.records,
            b"true" if final else b"false",
            orjson.dumps(self.key.key_id if key else None),
        )
        sig = None if key is None else base64.b64encode(key.sign(CHECKPOINT_DOMAIN + body + b"}"))
        line = body + SIG_FIELD + (b"null" if sig is None else b'"%b"' % sig) + b"}"
        self._prev = hashlib.sha256(line).hexdigest().encode()
        self.unsealed = 0
        self.checkpoints += 1
        return line
