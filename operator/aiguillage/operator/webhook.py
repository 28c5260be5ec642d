"""The validating admission webhook (kopf), refusing AIRoutes that would not be served
as written (an Enforce-mode AIPolicy forbidding a target included), AIProviders the
sidecar could not use or whose declared location their endpoint contradicts, and
AIPolicies the sidecar could not apply, with messages naming the field and the reason.
Audit-mode policies refuse nothing: what they would forbid comes back as warnings.

Its failure policy is Ignore: if the operator is down, objects are still admitted
and the data plane still enforces residency on every attempt, so availability of
the API never depends on the webhook; status conditions report what it would have said.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from aiguillage.operator.admission import policy_review, residency_breaches, route_review
from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.certs import self_signed
from aiguillage.operator.errors import ManifestError
from aiguillage.operator.inventory import Inventory, parse_provider
from aiguillage.operator.providers import admission_problems
from aiguillage.operator.reconciler import Reconciler

WEBHOOK_CONFIG = "aiguillage.dev"


@dataclass(frozen=True)
class WebhookOptions:
    listen: str  # host:port the webhook server binds
    host: str | None = None  # how the API server reaches it (default: the listen host)
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    managed: bool = True  # let kopf create the ValidatingWebhookConfiguration


def server(options: WebhookOptions) -> kopf.WebhookServer:
    addr, _, port = options.listen.rpartition(":")
    host = options.host or addr
    if options.certfile and options.keyfile:
        return kopf.WebhookServer(
            addr=addr, port=int(port), host=host,
            certfile=options.certfile, pkeyfile=options.keyfile, cafile=options.cafile,
        )  # fmt: skip
    cert = self_signed(host, Path(tempfile.mkdtemp(prefix="aiguillage-webhook-")))
    return kopf.WebhookServer(
        addr=addr, port=int(port), host=host,
        certfile=str(cert.certfile), pkeyfile=str(cert.keyfile), cadata=cert.ca_pem,
    )  # fmt: skip


def _reconciler(memo: kopf.Memo) -> Reconciler | None:
    reconciler = memo.get("reconciler")
    return reconciler if isinstance(reconciler, Reconciler) and reconciler.primed else None


# Handlers are coroutines so they run on the event loop, between the watch handlers'
# updates of the inventory, never in a thread while it changes.
@kopf.on.validate(GROUP, VERSION, "airoutes", id="airoute", ignore_failures=True,
                  operations=["CREATE", "UPDATE"])  # fmt: skip
async def validate_route(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    reconciler = _reconciler(memo)
    if reconciler is None:
        warnings.append("aiguillage operator is starting: references not checked yet")
        return
    review = route_review(reconciler.inv, namespace or "", body)
    if review.problems:
        raise kopf.AdmissionError("; ".join(review.problems), code=422)
    warnings.extend(review.warnings)


@kopf.on.validate(GROUP, VERSION, "aipolicies", id="aipolicy", ignore_failures=True,
                  operations=["CREATE", "UPDATE"])  # fmt: skip
async def validate_policy(body: kopf.Body, memo: kopf.Memo, warnings: list[str], **_: Any) -> None:
    """Refuse what the sidecar could not apply; warn of the targets it would take out of
    (Enforce) or record in (Audit) existing routes."""
    reconciler = _reconciler(memo)
    inv = reconciler.inv if reconciler is not None else Inventory()
    review = policy_review(inv, body)
    if review.problems:
        raise kopf.AdmissionError("; ".join(review.problems), code=422)
    warnings.extend(review.warnings)


@kopf.on.validate(GROUP, VERSION, "aiproviders", id="aiprovider", ignore_failures=True,
                  operations=["CREATE", "UPDATE"])  # fmt: skip
async def validate_provider(
    body: kopf.Body,
    name: str | None,
    memo: kopf.Memo,
    warnings: list[str],
    **kwargs: Any,
) -> None:
    """Refuse options the sidecar could not use and a location the endpoint contradicts;
    on update, warn when the provider's new residency takes it out of routes' rules."""
    try:
        updated = parse_provider(body)
    except ManifestError:
        return  # the API server's schema validation reports it
    problems = admission_problems(updated.spec)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=422)
    reconciler = _reconciler(memo)
    if reconciler is None or not name or kwargs.get("operation") != "UPDATE":
        return
    inv = dataclasses.replace(reconciler.inv, providers={**reconciler.inv.providers, name: updated})
    breaches = residency_breaches(inv, name)
    warnings.extend(f"{b} (this target will no longer be used)" for b in breaches)
