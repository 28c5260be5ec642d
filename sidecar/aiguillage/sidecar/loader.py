"""Load a config directory and its credentials into an immutable :class:`Snapshot`.

The config file is complete or it is not used: a missing or invalid file, a hash that does
not match the content, a route naming a provider the config lacks, or a credential file
the config names but the credentials directory lacks (the kubelet may mount the Secret's
new keys a moment after the ConfigMap) raises ConfigError, and the caller keeps its last
good snapshot.

A provider, on the other hand, only takes itself out: one whose options the adapter
cannot use (see :mod:`aiguillage.sidecar.adapters.options`) or whose credential is not
usable text (see :mod:`aiguillage.sidecar.credentials`) is kept in the snapshot as an
:class:`~aiguillage.sidecar.adapters.InvalidProvider` saying why; its targets are skipped
and audited as ``skipped_provider_invalid`` while every other provider serves.

Each route's data-protection rules are compiled here, once per loaded config (importing the
detection libraries they need): rules that cannot be compiled raise ConfigError naming the
route, so a request never meets them half-built.

Where each target processes data is derived again here (see
:mod:`aiguillage.sidecar.processing`), so a config written by an older operator or by hand
is checked against what its endpoints and model ids say, not only what it declares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from aiguillage.sidecar import log
from aiguillage.sidecar.adapters import Adapter, InvalidProvider, UnsupportedApi, adapter_for
from aiguillage.sidecar.adapters.options import options_problems
from aiguillage.sidecar.config import CONFIG_FILE, Provider, Route, SidecarConfig, Target
from aiguillage.sidecar.credentials import MAX_BYTES, credential_text
from aiguillage.sidecar.errors import ConfigError
from aiguillage.sidecar.privacy.errors import RulesError
from aiguillage.sidecar.processing import processing_location, provider_location, within

# A compiled config fits in a ConfigMap (1 MiB); anything much larger is not ours.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    config: SidecarConfig
    # Provider name -> its adapter, or why none can serve it.
    adapters: dict[str, Adapter | UnsupportedApi]
    fingerprint: tuple[tuple[str, int, int], ...]
    # The shared store's password (SharedStore.credential), if it has one.
    store_password: str | None = None

    @property
    def unusable(self) -> dict[str, str]:
        """Providers whose targets are skipped, and why."""
        return {n: str(a) for n, a in self.adapters.items() if isinstance(a, UnsupportedApi)}


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


def _read(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file (so a huge or endless one is seen as too big)."""
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def load(config_dir: Path, credentials_dir: Path) -> Snapshot:
    stamp = fingerprint(config_dir, credentials_dir)
    path = config_dir / CONFIG_FILE
    try:
        raw = _read(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
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
                secret = _read(cred_path, MAX_BYTES)
            except OSError as exc:
                raise ConfigError(
                    f'{cred_path}: credential of provider "{name}" cannot be read: {exc.strerror}'
                ) from exc
            try:
                credential = credential_text(secret)
            except ConfigError as exc:
                adapters[name] = InvalidProvider(
                    f'provider "{name}": credential file "{provider.credential}" {exc}'
                )
                continue
        adapters[name] = _adapter(name, provider, credential)
    password = _store_password(config, credentials_dir)
    config = _where_it_runs(config)
    for model, route in config.routes.items():
        try:
            route.protection  # noqa: B018 - compiled now, not on the first request
        except RulesError as exc:
            raise ConfigError(f"{path}: routes.{model}.dataProtection: {exc}") from exc
    return Snapshot(config, adapters, stamp, password)


def _store_password(config: SidecarConfig, credentials_dir: Path) -> str | None:
    store = config.shared_store
    if store is None or store.credential is None:
        return None
    path = credentials_dir / store.credential
    try:
        return credential_text(_read(path, MAX_BYTES))
    except OSError as exc:
        raise ConfigError(
            f"{path}: password of the shared store cannot be read: {exc.strerror}"
        ) from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: password of the shared store: {exc}") from exc


def _adapter(name: str, provider: Provider, credential: str | None) -> Adapter | UnsupportedApi:
    try:
        cls = adapter_for(provider.api)
    except UnsupportedApi as exc:
        return exc
    problems = options_problems(provider.api, provider.endpoint, provider.options)
    if problems:
        return InvalidProvider(f'provider "{name}": ' + "; ".join(map(str, problems)))
    try:
        return cls(provider, credential)
    except ConfigError as exc:
        return InvalidProvider(f'provider "{name}": {exc}')
    except Exception as exc:
        # An adapter that cannot start must not take the other providers with it. The
        # message of an unexpected error could quote the credential: only its type is kept.
        return InvalidProvider(f'provider "{name}": adapter failed to start ({type(exc).__name__})')


def _where_it_runs(config: SidecarConfig) -> SidecarConfig:
    """The config with each provider's and target's location derived from what its endpoint
    and model ids say (a no-op for a config the operator compiled)."""
    providers: dict[str, Provider] = {}
    for name, p in config.providers.items():
        where = provider_location(p.location, p.api, p.endpoint, p.options)
        if where != p.location:
            if p.location is not None and where is not None and not within(where, p.location):
                log.reload.warning(
                    'provider "%s" declares location %s but its endpoint processes data in %s: '
                    "residency is checked against %s",
                    name, p.location, where, where,
                )  # fmt: skip
            p = p.model_copy(update={"location": where})
        providers[name] = p
    routes: dict[str, Route] = {}
    for model, route in config.routes.items():
        targets = tuple(_located(t, providers[t.provider]) for t in route.targets)
        changed = any(a is not b for a, b in zip(targets, route.targets, strict=True))
        routes[model] = route.model_copy(update={"targets": targets}) if changed else route
    if providers == config.providers and all(routes[m] is r for m, r in config.routes.items()):
        return config
    return config.model_copy(update={"providers": providers, "routes": routes})


def _located(target: Target, provider: Provider) -> Target:
    """The target with the location its model id says, if it says more than its provider."""
    if target.location is not None:
        return target
    here = processing_location(provider.api, provider.endpoint, provider.options, target.model)
    return target if here is None else target.model_copy(update={"location": here})
