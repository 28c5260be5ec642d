"""The objects a render reads: typed snapshots of providers, routes, policies, Secrets and
Namespaces' labels.

Both the operator (fed by watch events) and ``aiguillage render`` (fed by manifest
files) fill an :class:`Inventory`; :mod:`aiguillage.operator.render` compiles from it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from aiguillage.operator.api.policy import AIPolicySpec
from aiguillage.operator.api.provider import AIProviderSpec
from aiguillage.operator.api.route import AIRouteSpec
from aiguillage.operator.errors import ManifestError, Problem
from aiguillage.operator.names import SECRET_KEY
from aiguillage.operator.providers import option_problems
from aiguillage.sidecar import config as cfg
from aiguillage.sidecar.privacy.rules import DataProtectionRules

DEFAULT_OPERATOR_NAMESPACE = "aiguillage-system"
_SECRET_KEY = re.compile(SECRET_KEY)


@dataclass(frozen=True)
class Provider:
    name: str
    generation: int
    spec: AIProviderSpec
    # Why the sidecar could not use it as written ("spec.options.project: ..."), by the
    # sidecar's own rules, computed once per spec; empty when usable.
    unusable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    generation: int
    created: str  # creationTimestamp; the older of two routes claiming one model wins
    spec: AIRouteSpec
    # The route's own data-protection rules, compiled by the sidecar's model.
    data_protection: DataProtectionRules | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Policy:
    name: str
    generation: int
    spec: AIPolicySpec
    # What the sidecar's own models refuse in the spec ("spec.dataProtection...: ..."). An
    # Enforce-mode policy with problems forbids every target in the namespaces it selects
    # until it is fixed: a guardrail that cannot be applied as written fails closed.
    problems: tuple[str, ...] = ()
    # Its data-protection rules as the sidecar applies them (audit only in Audit mode).
    data_protection: DataProtectionRules | None = None
    # Its shared store as the sidecar reads it, less the credential (added by render).
    shared_store: cfg.SharedStore | None = None

    @property
    def source(self) -> str:
        return f"AIPolicy {self.name}"

    @property
    def enforced(self) -> bool:
        return self.spec.mode is cfg.PolicyMode.ENFORCE

    def selects(self, labels: Mapping[str, str]) -> bool:
        return self.spec.namespace_selector.matches(labels)


@dataclass(frozen=True)
class Secret:
    namespace: str
    name: str
    data: Mapping[str, bytes]


@dataclass
class Inventory:
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE
    providers: dict[str, Provider] = field(default_factory=dict)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Secret] = field(default_factory=dict)
    namespaces: dict[str, Mapping[str, str]] = field(default_factory=dict)
    # (kind, namespace, name) -> where it was read ("file.yaml#2"); filled by render only.
    sources: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def routes_in(self, namespace: str) -> list[Route]:
        found = [r for (ns, _), r in self.routes.items() if ns == namespace]
        return sorted(found, key=lambda r: (r.created, r.name))

    def route_namespaces(self) -> set[str]:
        return {ns for ns, _ in self.routes}

    def credential_secret(self, name: str) -> Secret | None:
        return self.secrets.get((self.operator_namespace, name))

    def policies_for(self, namespace: str) -> list[Policy]:
        """The policies selecting ``namespace`` (by its labels; none known = no labels),
        by name."""
        labels = self.namespaces.get(namespace, {})
        return sorted(
            (p for p in self.policies.values() if p.selects(labels)), key=lambda p: p.name
        )


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("spec", "targets", 2, "provider")`` → ``spec.targets[2].provider``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_problems(exc: ValidationError, where: str, obj: str, prefix: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = (prefix, *err["loc"]) if prefix else tuple(err["loc"])
        problems.append(Problem(where, obj, field_path(loc), err["msg"]))
    return problems


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def parse_provider(body: Mapping[str, Any], where: str = "") -> Provider:
    meta = _meta(body)
    name = str(meta.get("name", ""))
    try:
        spec = AIProviderSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise ManifestError(validation_problems(exc, where, f"AIProvider {name}", "spec")) from exc
    return Provider(name, int(meta.get("generation") or 0), spec, tuple(option_problems(spec)))


def parse_route(body: Mapping[str, Any], namespace: str, where: str = "") -> Route:
    meta = _meta(body)
    name = str(meta.get("name", ""))
    obj = f"AIRoute {namespace}/{name}"
    try:
        spec = AIRouteSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise ManifestError(validation_problems(exc, where, obj, "spec")) from exc
    rules = None
    if spec.data_protection is not None:
        try:
            rules = spec.data_protection.compile(f"AIRoute {namespace}/{name}")
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            at = f"spec.dataProtection.{field}" if reason else "spec.dataProtection"
            raise ManifestError([Problem(where, obj, at, reason or field)]) from exc
    return Route(
        namespace,
        name,
        int(meta.get("generation") or 0),
        str(meta.get("creationTimestamp") or ""),
        spec,
        rules,
    )


def parse_policy(body: Mapping[str, Any], where: str = "") -> Policy:
    """An AIPolicy; raises ManifestError when its spec does not fit the schema. What only
    the sidecar's models can check is kept in ``Policy.problems`` (see :class:`Policy`)."""
    meta = _meta(body)
    name = str(meta.get("name", ""))
    try:
        spec = AIPolicySpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise ManifestError(validation_problems(exc, where, f"AIPolicy {name}", "spec")) from exc
    problems: list[str] = []
    source = f"AIPolicy {name}"
    rules = None
    if spec.data_protection is not None:
        try:
            rules = spec.data_protection.compile(
                source, audit_only=spec.mode is cfg.PolicyMode.AUDIT
            )
        except ValueError as exc:
            problems.append(f"spec.dataProtection.{exc}")
    store = None
    if spec.shared_store is not None:
        want = spec.shared_store
        try:
            store = cfg.SharedStore(
                url=want.url, key_prefix=want.key_prefix, time_zone=want.time_zone
            )
        except ValidationError as exc:
            problems += [
                f"spec.sharedStore.{field_path(tuple(to_camel(str(x)) for x in e['loc']))}: "
                + str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors()
            ]
    return Policy(name, int(meta.get("generation") or 0), spec, tuple(problems), rules, store)


def parse_secret(body: Mapping[str, Any], namespace: str, where: str = "") -> Secret:
    name = str(_meta(body).get("name", ""))
    obj = f"Secret {namespace}/{name}"
    data: dict[str, bytes] = {}
    problems: list[Problem] = []
    for section in ("data", "stringData"):
        entries = body.get(section)
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            problems.append(Problem(where, obj, section, "must be a mapping of keys to strings"))
            continue
        for key, value in entries.items():
            if not isinstance(key, str) or not _SECRET_KEY.fullmatch(key):
                reason = "is not a Secret key (letters, digits, '-', '_' or '.')"
                problems.append(Problem(where, obj, f"{section}[{key!r}]", reason))
            elif not isinstance(value, str):
                problems.append(Problem(where, obj, f"{section}.{key}", "must be a string"))
            elif section == "stringData":
                data[key] = value.encode()
            else:
                try:
                    data[key] = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    problems.append(Problem(where, obj, f"{section}.{key}", "not base64"))
    if problems:
        raise ManifestError(problems)
    return Secret(namespace, name, data)
