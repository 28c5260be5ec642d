"""``aiguillage operator``: run the kopf control plane."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import logging
import os
import secrets
import socket
from collections.abc import Sequence


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
                   help="the chart owns the ValidatingWebhookConfiguration")  # fmt: skip
    args = p.parse_args(list(argv))
    memo = kopf.Memo()
    if args.webhook_listen:
        from aiguillage.operator import webhook

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
