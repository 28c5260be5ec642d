"""AWS Signature Version 4 (header form), for the Bedrock simulator to check requests.

The signature is computed the way botocore's ``SigV4Auth`` does for non-S3 services:

* canonical URI: the path **as sent** (already percent-encoded once) encoded once more,
  ``/`` and ``~`` kept (so a model id ``a:b`` sent as ``a%3Ab`` is signed as ``a%253Ab``);
* canonical query: the ``key=value`` pairs as sent, sorted;
* canonical headers: the signed headers, lower-cased, values trimmed with inner runs of
  whitespace collapsed, repeated headers joined with ``,``;
* payload hash: hex SHA-256 of the body;
* string to sign: ``AWS4-HMAC-SHA256``, ``X-Amz-Date``, the credential scope
  (``date/region/service/aws4_request``) and the hex SHA-256 of the canonical request;
* key: ``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")``.

:func:`sign` does the same on the client side (tests use it to sign requests to the simulator).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, urlsplit

__all__ = [
    "ALGORITHM",
    "Credential",
    "canonical_request",
    "parse_authorization",
    "sign",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM: Final = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credential:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def parse_authorization(value: str) -> Credential:
    """Split a SigV4 ``Authorization`` header; ``ValueError`` names what is missing."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise ValueError(f"Authorization header must start with {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key.strip()] = val.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise ValueError(
                f"Authorization header requires '{required}' parameter. "
                f"Authorization={value.strip()}"
            )
    parts = fields["Credential"].split("/")
    if len(parts) != 5:
        raise ValueError("Credential should be scoped to a valid date/region/service/aws4_request")
    access_key, date, region, service, terminator = parts
    return Credential(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = sorted(
        (key, value) for key, _, value in (p.partition("=") for p in query.split("&") if p)
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The canonical request; ``headers`` are the ``(name, value)`` pairs as received."""
    signed = [h.lower() for h in signed_headers]
    values: dict[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        key = name.lower()
        if key in values:
            values[key].append(" ".join(value.split()))
    canonical_headers = "".join(f"{name}:{','.join(values[name])}\n" for name in signed)
    return "\n".join(
        [
            method.upper(),
            quote(raw_path or "/", safe="/~"),
            _canonical_query(raw_query),
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, amz_date: str, region: str, service: str, canonical: str) -> str:
    """Hex signature of a canonical request."""
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    key = signing_key(secret, date, region, service)
    return hmac.new(
        key, string_to_sign(amz_date, scope, canonical).encode(), hashlib.sha256
    ).hexdigest()


def sign(
    method: str,
    url: str,
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "bedrock",
    headers: Mapping[str, str] | None = None,
    session_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers to add to a request (``Authorization``, ``X-Amz-Date``...), botocore-style.

    ``url`` must already be percent-encoded the way it will be sent.
    """
    parts = urlsplit(url)
    amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    out = dict(headers or {})
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    signed = sorted(
        {
            name.lower()
            for name in out
            if name.lower() not in {"user-agent", "expect", "authorization"}
        }
    )
    canonical = canonical_request(
        method, parts.path, parts.query, out.items(), signed, hashlib.sha256(body).hexdigest()
    )
    sig = signature(secret_key, amz_date, region, service, canonical)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    out["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return out
