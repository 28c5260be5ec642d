"""The ``aiguillage`` command: one entry point for every part of the product.

Each subcommand imports only what it needs, so ``aiguillage sidecar`` never loads
the operator, kopf or a Kubernetes client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _render(args: argparse.Namespace) -> int:
    from aiguillage.operator import commands

    return commands.render(args.file, args.namespace, args.out, args.operator_namespace)


def _explain(args: argparse.Namespace) -> int:
    from aiguillage.operator import commands

    return commands.explain(args.file, args.namespace, args.model, args.operator_namespace)


def _crds(args: argparse.Namespace) -> int:
    from aiguillage.operator import crdgen

    return crdgen.main(args.out, helm=args.helm)


def _sidecar(args: argparse.Namespace) -> int:
    from aiguillage.sidecar import main as sidecar_main

    serving = sidecar_main.ServeOptions.from_environment(
        args.drain_seconds, args.idle_timeout, args.body_timeout, args.allowed_hosts
    )
    return sidecar_main.run(
        args.config_dir,
        args.listen,
        args.credentials_dir,
        serving,
        health_listen=args.health_listen,
        ready_without_config=args.ready_without_config,
    )


def _scan(args: argparse.Namespace) -> int:
    from aiguillage.operator import scan

    return scan.run(
        args.source,
        args.rules,
        args.api,
        args.show_values,
        args.apply,
        args.target_location,
        args.target_jurisdiction,
    )


def _audit_verify(args: argparse.Namespace) -> int:
    from aiguillage.operator.audittrail import commands

    return commands.run_verify(args.file, args.public_key, args.chains_only, args.strict)


def _audit_report(args: argparse.Namespace) -> int:
    from aiguillage.operator.audittrail.report import command

    return command.run_report(
        args.file, args.out, args.public_key, args.chains_only, args.strict, not args.no_png
    )


def _operator(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from aiguillage.operator import main as operator_main

    return operator_main.run(list(rest))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiguillage", description="Kubernetes-native AI gateway")
    sub = p.add_subparsers(dest="command", required=True)

    def manifests(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-f",
            "--file",
            type=Path,
            action="append",
            required=True,
            help="manifest file or directory (repeatable)",
        )
        sp.add_argument(
            "--operator-namespace",
            default="aiguillage-system",
            help="namespace holding provider Secrets",
        )

    r = sub.add_parser("render", help="compile manifests into the sidecar's files, offline")
    manifests(r)
    r.add_argument("--namespace", "-n", help="namespace whose routes to compile")
    r.add_argument("--out", type=Path, help="write DIR/config/config.json and DIR/credentials/")
    r.set_defaults(run=_render)

    e = sub.add_parser("explain", help="show the order targets are tried in, and exclusions")
    manifests(e)
    e.add_argument("--namespace", "-n", required=True)
    e.add_argument("--model", "-m", required=True)
    e.set_defaults(run=_explain)

    s = sub.add_parser("sidecar", help="run the data plane")
    s.add_argument("--config-dir", type=Path, required=True)
    s.add_argument(
        "--credentials-dir",
        type=Path,
        help="default: the credentials/ folder beside the config dir",
    )
    s.add_argument("--listen", default="127.0.0.1:4000")
    s.add_argument(
        "--drain-seconds",
        type=float,
        help="on SIGTERM, seconds requests in flight get to finish before they are ended "
        "(env AIGUILLAGE_DRAIN_SECONDS; default 20, under the pod's 30 s grace period)",
    )
    s.add_argument(
        "--idle-timeout",
        type=float,
        help="seconds a connection may go without complete request headers, idle or slow "
        "(env AIGUILLAGE_IDLE_TIMEOUT; default 30)",
    )
    s.add_argument(
        "--body-timeout",
        type=float,
        help="seconds to receive a request body once its headers arrived "
        "(env AIGUILLAGE_BODY_TIMEOUT; default 60)",
    )
    s.add_argument(
        "--allowed-hosts",
        help="comma-separated Host names served besides loopback, e.g. a Service name "
        "(env AIGUILLAGE_ALLOWED_HOSTS)",
    )
    s.add_argument(
        "--health-listen",
        help="also serve /healthz, /readyz and /metrics (never the API) here, e.g. "
        "$(POD_IP):4001 for the kubelet's probes and Prometheus",
    )
    s.add_argument(
        "--ready-without-config",
        action="store_true",
        help="no config.json yet (optional ConfigMap absent): serve no routes and be ready",
    )
    s.set_defaults(run=_sidecar)

    sc = sub.add_parser(
        "scan",
        help="run the data-protection detectors offline on a text or a request",
        description="Exit code: 0 nothing found, 1 personal data found, 2 bad input.",
    )
    sc.add_argument("source", metavar="FILE|-", help="a JSON request or plain text; - for stdin")
    sc.add_argument("--rules", type=Path, help="data-protection rules (YAML, spec.dataProtection)")
    sc.add_argument(
        "--api",
        choices=["chat", "completions", "embeddings", "responses", "messages", "text"],
        help="the input's API (default: recognised from its fields)",
    )
    sc.add_argument("--show-values", action="store_true", help="print values unmasked")
    sc.add_argument("--apply", action="store_true", help="print the request the target gets")
    sc.add_argument("--target-location", help="where the target processes data (e.g. US)")
    sc.add_argument("--target-jurisdiction", help="the target operator's jurisdiction")
    sc.set_defaults(run=_scan)

    a = sub.add_parser("audit", help="check audit trails and report on them")
    audit = a.add_subparsers(dest="audit_command", required=True)

    def trail(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "file",
            type=Path,
            nargs="+",
            metavar="FILE",
            help="audit files, in any order (other log lines are skipped and counted)",
        )
        sp.add_argument(
            "--public-key",
            type=Path,
            action="append",
            default=[],
            metavar="PATH",
            help="PEM file, directory of PEM files, or the ConfigMap of public keys as "
            "YAML/JSON (repeatable)",
        )
        sp.add_argument(
            "--chains-only",
            action="store_true",
            help="check the hash links alone (no keys: signatures are not checked)",
        )
        sp.add_argument(
            "--strict", action="store_true", help="warnings (unsealed records...) fail too"
        )

    exit_codes = "Exit code: 0 every chain holds, 1 a chain is broken, 2 bad input."
    av = audit.add_parser(
        "verify",
        help="check every chain and checkpoint signature; name the first broken link",
        description=exit_codes,
    )
    trail(av)
    av.set_defaults(run=_audit_verify)
    ar = audit.add_parser(
        "report",
        help="write the residency and spend report (HTML, CSV, PNG)",
        description=exit_codes,
    )
    trail(ar)
    ar.add_argument("--out", type=Path, required=True, help="directory to write the report to")
    ar.add_argument("--no-png", action="store_true", help="no PNG charts (they need matplotlib)")
    ar.set_defaults(run=_audit_report)

    c = sub.add_parser("crds", help="print the generated CRDs")
    c.add_argument("--out", type=Path, help="write one file per CRD into this directory")
    c.add_argument("--helm", action="store_true", help="wrap for the chart (crds.enabled)")
    c.set_defaults(run=_crds)

    sub.add_parser("operator", help="run the control plane (extra args go to kopf run)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:
        sys.exit(_operator(argparse.Namespace(), argv[1:]))
    args = parser().parse_args(argv)
    sys.exit(args.run(args))
