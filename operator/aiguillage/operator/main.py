"""``aiguillage operator``: run the kopf control plane."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import json
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def run(argv: Sequence[str]) -> int:
    import kopf

    from aiguillage.operator import handlers  # noqa: F401  (registers the handlers)

    p = argparse.ArgumentParser(prog="aiguillage operator")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--liveness", help="e.g. http://0.0.0.0:8080/healthz")
    w = p.add_argument_group("admission webhook (off unless --webhook-listen is given)")
    w.add_argument("--webhook-listen", help="host:port to serve the webhook on")
    w.add_argument("--webhook-host", help="name or IP the API server uses to reach it")
    w.add_argument("--webhook-cert", help="serving certificate (PEM); default: self-signed")
    w.add_argument("--webhook-key", help="its private key (PEM)")
    w.add_argument("--webhook-ca", help="CA bundle the API server should trust")
    w.add_argument("--webhook-unmanaged", action="store_true",
                   help="the chart owns the webhook configurations")  # fmt: skip
    i = p.add_argument_group("sidecar injection (off unless --sidecar-image is given)")
    i.add_argument("--sidecar-image", help="image of the injected sidecar")
    i.add_argument("--sidecar-image-pull-policy", default="IfNotPresent",
                   choices=["Always", "IfNotPresent", "Never"])  # fmt: skip
    i.add_argument("--sidecar-port", type=int, default=4000, help="its API, on 127.0.0.1")
    i.add_argument("--sidecar-health-port", type=int, default=4001,
                   help="its /healthz and /readyz on the pod IP, for kubelet probes")  # fmt: skip
    i.add_argument("--sidecar-resources", type=_json_object,
                   help='its resources as JSON, e.g. {"requests": {"cpu": "25m"}}')  # fmt: skip
    i.add_argument("--sidecar-uid", type=int, default=65532, help="numeric user it runs as")
    o = p.add_argument_group("replicas and propagation")
    o.add_argument("--leader-elect", action="store_true",
                   help="write only while holding a Lease (for several replicas)")  # fmt: skip
    o.add_argument("--leader-election-lease", default="aiguillage-operator",
                   help="name of the Lease, in the operator's namespace")  # fmt: skip
    o.add_argument("--propagation-rate", type=float, default=20.0,
                   help="at most this many pod annotation patches per second (0: off)")  # fmt: skip
    p.add_argument("--metrics-listen", help="serve Prometheus /metrics here, e.g. 0.0.0.0:8081")
    args = p.parse_args(list(argv))
    memo = kopf.Memo()
    memo["leader_elect"] = args.leader_elect
    memo["lease"] = args.leader_election_lease
    memo["propagation_rate"] = args.propagation_rate
    memo["metrics_listen"] = args.metrics_listen
    if args.sidecar_image:
        from aiguillage.operator.injection import DEFAULT_RESOURCES, SidecarSpec

        memo["sidecar"] = SidecarSpec(
            image=args.sidecar_image, image_pull_policy=args.sidecar_image_pull_policy,
            port=args.sidecar_port, health_port=args.sidecar_health_port,
            resources=args.sidecar_resources or DEFAULT_RESOURCES, run_as_user=args.sidecar_uid,
        )  # fmt: skip
    if args.webhook_listen:
        from aiguillage.operator import webhook

        webhook.prepare(memo)
        memo["webhook"] = webhook.WebhookOptions(
            listen=args.webhook_listen, host=args.webhook_host, certfile=args.webhook_cert,
            keyfile=args.webhook_key, cafile=args.webhook_ca, managed=not args.webhook_unmanaged,
        )  # fmt: skip
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else os.environ.get("AIGUILLAGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # One line per admission request (every opted-in pod creation) is noise, not news.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # kopf logs every handled watch event at INFO; only problems are worth a line.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # kopf reads its peering identity from POD_ID when set (its documented override), and
    # otherwise derives it from getpass.getuser(), which fails under a UID without a name.
    os.environ["POD_ID"] = identity()
    asyncio.run(
        kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness, memo=memo)
    )
    return 0


def identity() -> str:
    """This operator's name among its peers, as kopf would make it, under any UID.

    kopf's own default calls ``getpass.getuser()``, which raises ``KeyError`` when the process
    runs under a numeric UID with no passwd entry (OpenShift, hardened images): the pod's name
    (``POD_ID``, kopf's variable, or ``POD_NAME``) is used when set, and the UID otherwise.
    """
    pod = os.environ.get("POD_ID") or os.environ.get("POD_NAME")
    if pod:
        return pod
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER in the environment
        user = f"uid-{os.getuid()}"
    started = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    return f"{user}@{socket.gethostname()}/{started}/{secrets.token_hex(2)}"
