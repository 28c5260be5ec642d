"""Kubernetes' rules for object names and Secret keys, for objects read from files.

The API server enforces these on what it stores; ``aiguillage render`` reads files, where
anything can be written, and uses provider names as file names (the credentials it writes).
The same patterns go into the CRDs where a field refers to another object by name.
"""

from __future__ import annotations

import re

# RFC 1123 subdomain: what metadata.name of most kinds (AIProvider, AIRoute, Secret) must be.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
# RFC 1123 label: what a Namespace's name must be.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MAX = 63
# A key of a Secret's data.
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
_LABEL = re.compile(DNS_LABEL)


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= DNS_SUBDOMAIN_MAX and bool(_SUBDOMAIN.fullmatch(name))


def name_problem(name: object, label: bool = False) -> str | None:
    """Why ``name`` cannot be a Kubernetes object name (a DNS label when ``label``), or None."""
    if not isinstance(name, str):
        return f"must be a string (got {type(name).__name__})"
    limit, pattern = (DNS_LABEL_MAX, _LABEL) if label else (DNS_SUBDOMAIN_MAX, _SUBDOMAIN)
    if len(name) > limit:
        return f"must be at most {limit} characters (got {len(name)})"
    if not pattern.fullmatch(name):
        kind = "an RFC 1123 label" if label else "an RFC 1123 subdomain"
        return (
            f"must be {kind}: lower-case letters, digits and '-'"
            + ("" if label else " or '.'")
            + ", starting and ending with a letter or digit"
        )
    return None
