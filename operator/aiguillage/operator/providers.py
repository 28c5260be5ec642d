"""Whether an AIProvider is usable and truthful as written, asked of the sidecar's own rules.

Three questions, each answered by the sidecar package so that render, the admission webhook,
status conditions and the sidecar's loader can never disagree:

- its options and endpoint (:mod:`aiguillage.sidecar.adapters.options`): a provider failing
  them is never compiled into a config, and routes using it leave its targets out;
- its credential (:mod:`aiguillage.sidecar.credentials`): a missing Secret or key, or a value
  the sidecar would refuse (not UTF-8, CR/LF...), is never copied into a namespace;
- its declared location against what its endpoint says (:mod:`aiguillage.sidecar.processing`):
  a contradiction is refused at admission and render; if one gets in anyway (webhook down),
  residency is checked against what the endpoint says, and the status reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiguillage.operator.api.provider import AIProviderSpec
from aiguillage.sidecar.adapters.options import options_problems
from aiguillage.sidecar.processing import (
    contradiction,
    endpoint_evidence,
    processing_location,
    provider_location,
)

if TYPE_CHECKING:  # the inventory holds providers checked here
    from aiguillage.operator.inventory import Inventory

SECRET_NOT_FOUND = "SecretNotFound"
INVALID_CREDENTIAL = "InvalidCredential"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a provider: a condition reason and a message naming the field."""

    reason: str
    message: str


def option_problems(spec: AIProviderSpec) -> list[str]:
    """Why the sidecar could not use this provider as written ("spec.options.x: ...")."""
    return [f"spec.{p}" for p in options_problems(spec.api.value, spec.endpoint, spec.options)]


def location_contradiction(spec: AIProviderSpec) -> str | None:
    """A declared location its endpoint contradicts ("spec.residency.location: ...")."""
    declared = spec.residency.location
    problem = contradiction(declared, spec.api.value, spec.endpoint, spec.options)
    return None if problem is None else f"spec.{problem}"


def admission_problems(spec: AIProviderSpec) -> list[str]:
    """Everything that makes a provider refused at admission and reported by render. Where
    the endpoint processes data is only derived from options that are valid."""
    problems = option_problems(spec)
    clash = None if problems else location_contradiction(spec)
    return problems + ([clash] if clash else [])


def credential_finding(inv: Inventory, spec: AIProviderSpec) -> Finding | None:
    """Why the provider's credential cannot be copied to a namespace, or None if it can."""
    name = spec.auth.secret_name()
    if name is None:
        return None
    secret = inv.credential_secret(name)
    where = f"Secret {inv.operator_namespace}/{name}"
    if secret is None:
        return Finding(SECRET_NOT_FOUND, f"{where} does not exist")
    made = spec.auth.credential(secret.data)
    if not isinstance(made, str):
        return None
    reason = SECRET_NOT_FOUND if made.startswith("has no key") else INVALID_CREDENTIAL
    return Finding(reason, f"{where} {made}")


def location(spec: AIProviderSpec) -> str | None:
    """Where the provider processes data for residency: its endpoint's word, else its own."""
    return provider_location(spec.residency.location, spec.api.value, spec.endpoint, spec.options)


def target_location(spec: AIProviderSpec, model: str) -> str | None:
    """Where one of its models processes data (a Bedrock ``us.`` profile says more than the
    endpoint's region)."""
    return processing_location(spec.api.value, spec.endpoint, spec.options, model) or location(spec)


def conditions(inv: Inventory, name: str) -> list[tuple[str, bool, str, str]]:
    """The provider's status conditions as (type, status, reason, message): Accepted,
    CredentialsResolved, ResidencyConsistent (when its options are valid), and Ready (the
    first of them that is False)."""
    provider = inv.providers[name]
    spec = provider.spec
    out = [
        ("Accepted", False, "InvalidOptions", "; ".join(provider.unusable))
        if provider.unusable
        else ("Accepted", True, "Accepted", f"usable by the sidecar's {spec.api.value} adapter")
    ]
    secret = credential_finding(inv, spec)
    out.append(
        ("CredentialsResolved", False, secret.reason, secret.message)
        if secret
        else ("CredentialsResolved", True, "Resolved", "credentials found")
    )
    if not provider.unusable:  # nothing is derived from options that are not valid
        clash = location_contradiction(spec)
        out.append(
            (
                "ResidencyConsistent",
                False,
                "LocationContradicted",
                f"{clash}; residency is checked against where the endpoint processes data",
            )
            if clash
            else ("ResidencyConsistent", True, "Consistent", _consistent(spec))
        )
    failed = next((c for c in out if not c[1]), None)
    ready = (
        ("Ready", False, failed[2], failed[3])
        if failed
        else ("Ready", True, "Ready", "usable by routes")
    )
    return [*out, ready]


def _consistent(spec: AIProviderSpec) -> str:
    evidence = endpoint_evidence(spec.api.value, spec.endpoint, spec.options)
    if evidence is None:
        return "the endpoint does not say where it processes data: the declaration is used"
    return f"{evidence.source}, which agrees with the declaration"
