"""Load a config directory and its credentials into an immutable :class:`Snapshot`.

A snapshot is complete or it is not made: a missing or invalid file, a hash that
does not match the content, or a credential the config names but the credentials
directory lacks raises ConfigError, and the caller keeps its last good snapshot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from aiguillage.sidecar.adapters import Adapter, UnsupportedApi, adapter_for
from aiguillage.sidecar.config import CONFIG_FILE, SidecarConfig
from aiguillage.sidecar.errors import ConfigError


@dataclass(frozen=True)
class Snapshot:
    config: SidecarConfig
    # Provider name -> its adapter, or why none can serve it.
    adapters: dict[str, Adapter | UnsupportedApi]
    fingerprint: tuple[tuple[str, int, int], ...]


def fingerprint(config_dir: Path, credentials_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap identity of the files' current versions (follows Kubernetes' ..data symlinks)."""
    out = []
    for folder in (config_dir, credentials_dir):
        try:
            names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        except OSError:
            continue
        for name in names:
            try:
                st = os.stat(folder / name)
            except OSError:
                continue
            out.append((f"{folder.name}/{name}", st.st_mtime_ns, st.st_size))
    return tuple(out)


def load(config_dir: Path, credentials_dir: Path) -> Snapshot:
    stamp = fingerprint(config_dir, credentials_dir)
    path = config_dir / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        config = SidecarConfig.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: {where}: {first['msg']}{more}") from exc
    if config.hash and config.hash != config.content_hash():
        raise ConfigError(f"{path}: content does not match its hash (partial write?)")
    for model, route in config.routes.items():
        for target in route.targets:
            if target.provider not in config.providers:
                raise ConfigError(
                    f'{path}: routes.{model}: provider "{target.provider}" is not in providers'
                )
    adapters: dict[str, Adapter | UnsupportedApi] = {}
    for name, provider in config.providers.items():
        credential = None
        if provider.credential:
            cred_path = credentials_dir / provider.credential
            try:
                credential = cred_path.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f'{cred_path}: credential of provider "{name}" cannot be read: {exc.strerror}'
                ) from exc
        try:
            adapters[name] = adapter_for(provider.api)(provider, credential)
        except UnsupportedApi as exc:
            adapters[name] = exc
    return Snapshot(config, adapters, stamp)
