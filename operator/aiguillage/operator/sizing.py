"""Keep a namespace's compiled output within what one ConfigMap and one Secret can hold.

The API server refuses a ConfigMap or Secret whose data exceeds 1 MiB; an operator that
kept trying to write one would retry forever while nothing says why. So render measures
before anything is written. When a namespace's routes do not all fit, the oldest routes
are kept (the order model-name conflicts are settled in) and each route that does not fit
is left out and marked ``Ready=False``, reason ``ConfigTooLarge``, with the sizes.

Why not refuse the namespace's whole new config and keep the last one instead: that would
also hold back every other change in the namespace, including a provider leaving the EU,
which must reach the sidecars at once. Leaving out the newest routes keeps every served
route current, and the routes left out are the ones that pushed the namespace over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from aiguillage.sidecar.config import CONFIG_FILE

# The API server's limit on a ConfigMap's (and a Secret's) data, keys included.
OBJECT_LIMIT = 1024 * 1024
# Room left for metadata: labels, annotations, owner references (one per route).
MARGIN = 64 * 1024
BUDGET = OBJECT_LIMIT - MARGIN
# Commas, braces and line breaks around one entry, counted generously.
_ENTRY_SLACK = 16


def config_size(config_json: bytes) -> int:
    """Size of the ConfigMap's data as the API server counts it."""
    return len(CONFIG_FILE) + len(config_json)


def secret_size(credentials: Mapping[str, bytes]) -> int:
    """Size of the Secret's data as the API server counts it (decoded values)."""
    return sum(len(key) + len(value) for key, value in credentials.items())


def entry_size(key: str, value: Any, depth: int) -> int:
    """Bytes one ``"key": value`` entry takes in the indented config file, nested ``depth``
    levels below the top (see :meth:`aiguillage.sidecar.config.SidecarConfig.to_json`)."""
    text = orjson.dumps({key: value}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    lines = text.count(b"\n") + 1
    return len(text) + 2 * depth * lines + _ENTRY_SLACK


def too_large(what: str, size: int, limit: int, namespace: str) -> str:
    return (
        f"not served: with this route the namespace's {what} would be {size} bytes, over the "
        f"{limit}-byte limit (a Kubernetes object holds at most {OBJECT_LIMIT} bytes of data, "
        f"less a margin for metadata); older routes are served first: remove or split routes "
        f"in namespace {namespace}"
    )
