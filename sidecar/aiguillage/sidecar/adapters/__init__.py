"""Provider adapters: one module per wire schema, registered by their ``api`` name.

Import :func:`adapter_for` to get the adapter class for a provider; it is the one
place that knows which module serves which ``api``, and it imports that module
only when a loaded config needs it (each unused adapter costs nothing).
"""

from __future__ import annotations

import importlib

from aiguillage.sidecar.adapters.base import REGISTRY, Adapter, InvalidProvider, UnsupportedApi

# api name -> module defining the adapter class (imported on first use).
MODULES: dict[str, str] = {
    "openai": "aiguillage.sidecar.adapters.openai",
    "anthropic": "aiguillage.sidecar.adapters.anthropic",
    "azure-openai": "aiguillage.sidecar.adapters.azure_openai",
    "gemini": "aiguillage.sidecar.adapters.gemini",
    "vertex-ai": "aiguillage.sidecar.adapters.vertex_ai",
    "bedrock": "aiguillage.sidecar.adapters.bedrock",
}


def adapter_for(api: str) -> type[Adapter]:
    if api not in REGISTRY and api in MODULES:
        importlib.import_module(MODULES[api])
    try:
        return REGISTRY[api]
    except KeyError:
        supported = ", ".join(sorted(MODULES))
        raise UnsupportedApi(
            f'unsupported api "{api}" (this sidecar speaks: {supported})'
        ) from None


__all__ = ["Adapter", "InvalidProvider", "UnsupportedApi", "adapter_for"]
