"""Request ids: the client's ``x-request-id`` when it is a sane token, else one of ours.

The id is echoed in a response header and written to the audit record and logs, so a client's
value is taken only when it is a short token of ``[A-Za-z0-9._:-]`` (no CR/LF, no spaces, at
most :data:`MAX_LENGTH` characters); anything else is replaced by a generated id.
"""

from __future__ import annotations

import itertools
import re
import secrets

MAX_LENGTH = 128
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Generated ids: 64 random bits per process, then a counter — unique, and cheaper than uuid4.
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def next_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


def request_id(client_value: str | None) -> str:
    """The id of a request whose ``x-request-id`` header is ``client_value`` (or absent)."""
    if client_value and _SANE.fullmatch(client_value):
        return client_value
    return next_request_id()
