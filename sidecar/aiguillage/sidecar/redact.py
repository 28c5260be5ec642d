"""Scrubbing credentials out of what a provider sends back.

A provider's error may echo the key it was sent ("Incorrect API key provided:
sk-..."), and such errors leave the sidecar: relayed to the client as they are (a 4xx on
the request), summarised in the 502 that ends a failed request, in a stream's error event
and in the audit record. Each of these goes through a :class:`Redactor` first, which
replaces every secret of the config's adapters (:meth:`~.adapters.base.Adapter.secrets`)
with ``[REDACTED]``: as sent (which covers ``Bearer <key>``), JSON-escaped (with or without
``/`` as ``\\/``) and percent-encoded. Secrets shorter than :data:`MIN_SECRET` characters are
left alone: they would match ordinary words, and no provider issues keys that short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

import orjson

from aiguillage.sidecar.adapters.base import Adapter, UnsupportedApi

REDACTED = "[REDACTED]"
MIN_SECRET = 8


class Redactor:
    """Replaces known secrets, in any of their common encodings, in text and bytes."""

    __slots__ = ("_bytes", "_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                continue
            escaped = orjson.dumps(secret).decode()[1:-1]
            forms.update((secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe="")))
        # Longest first, so that a secret containing another is replaced whole.
        self._text = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode() for form in self._text]

    def text(self, value: str) -> str:
        for form in self._text:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def bytes(self, value: bytes) -> bytes:
        marker = REDACTED.encode()
        for form in self._bytes:
            if form in value:
                value = value.replace(form, marker)
        return value


def redactor_for(
    names: Iterable[str], adapters: Mapping[str, Adapter | UnsupportedApi]
) -> Redactor:
    """A redactor of the secrets of the adapters of providers ``names``."""
    secrets: list[str] = []
    for name in names:
        try:
            adapter = adapters[name]
        except KeyError:
            continue
        if isinstance(adapter, Adapter):
            secrets.extend(adapter.secrets())
    return Redactor(secrets)
