"""What a credential may contain: the one rule shared by the sidecar and the operator.

A credential ends up in an HTTP header (an API key, a bearer token) or in a JSON document
whose fields do (Bedrock's AWS keys). Every provider's credentials are printable ASCII;
anything else is a mistake (a key pasted with a Windows line ending in the middle, a binary
file mounted by error) that would otherwise surface as a crash when the header is sent, or
as a header injection. Surrounding whitespace is dropped (``echo`` adds a newline).

The sidecar's loader marks a provider whose credential fails this check unusable (its
targets are skipped); the operator refuses to copy such a Secret value in the first place
and says why on the provider's status. Neither ever shows the value: reasons name a byte
offset, never the bytes.
"""

from __future__ import annotations

from aiguillage.sidecar.errors import ConfigError

# Far above any real key or token (a GCP access token is ~2 KiB), far below a Secret's 1 MiB.
MAX_BYTES = 64 * 1024


class InvalidCredential(ConfigError):
    """A credential's bytes cannot be used; the message says why, never what they are."""


def credential_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot be used as a credential, or None if it can."""
    if len(raw) > MAX_BYTES:
        return f"is larger than {MAX_BYTES} bytes"
    value = raw.strip()
    if not value:
        return "is empty"
    for offset, byte in enumerate(value):
        if 0x20 <= byte < 0x7F:
            continue
        if byte >= 0x80:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"is not UTF-8 text (invalid byte at offset {exc.start})"
            return f"contains a non-ASCII character at offset {offset}"
        name = {0x0A: "LF", 0x0D: "CR", 0x00: "NUL", 0x09: "TAB", 0x7F: "DEL"}.get(byte, "")
        what = f" ({name})" if name else ""
        return f"contains a control character{what} at offset {offset}"
    return None


def credential_text(raw: bytes) -> str:
    """The credential as text, without surrounding whitespace; InvalidCredential if unusable."""
    problem = credential_problem(raw)
    if problem is not None:
        raise InvalidCredential(problem)
    return raw.strip().decode("ascii")
