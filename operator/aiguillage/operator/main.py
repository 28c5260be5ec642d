"""``aiguillage operator``: run the kopf control plane."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence


def run(argv: Sequence[str]) -> int:
    import kopf

    from aiguillage.operator import handlers  # noqa: F401  (registers the handlers)

    p = argparse.ArgumentParser(prog="aiguillage operator")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--liveness", help="e.g. http://0.0.0.0:8080/healthz")
    args = p.parse_args(list(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else os.environ.get("AIGUILLAGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # kopf logs every handled watch event at INFO; only problems are worth a line.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness))
    return 0
