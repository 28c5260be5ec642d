"""``make dev``: the whole product running locally until Ctrl-C.

Where this machine can run the local node (Linux, root, the Debian packages of ``make
node-deps``: see `aiguillage.devtools.node.preflight`), ``make dev`` runs the product on it
(`aiguillage.devtools.dev_node`): the chart installed with the images of the working tree, the
demo app in a pod next to its sidecar. Elsewhere it says why and runs the process mode below,
which needs no node (``--mode`` forces one or the other).

Process mode: starts a real etcd + kube-apiserver, installs the CRDs and ``examples/``, runs
two simulated providers (EU and US), the operator, and a sidecar for namespace ``support``
whose config files are synced from the operator's ConfigMap and Secret the way the kubelet
syncs mounted volumes. Then it asks the sidecar one question with the official openai SDK and
prints who answered.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
from pathlib import Path

import openai

from aiguillage.devtools import dev_node, images, processes
from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import preflight
from aiguillage.devtools.node.lifecycle import find_bin_dir
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import answers, wait_for

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "support"
OPERATOR_NAMESPACE = "aiguillage-system"


def say(text: str) -> None:
    print(f"[dev] {text}", flush=True)


def sync_mounts(plane: ControlPlane, into: Path) -> bool:
    """Copy the namespace's ConfigMap and Secret into files; True when both exist."""
    out = plane.kubectl(
        "get", "configmap/aiguillage-config", "secret/aiguillage-credentials",
        "-n", NAMESPACE, "-o", "json", "--ignore-not-found", check=False,
    ).stdout  # fmt: skip
    if not out.strip():
        return False
    items = json.loads(out).get("items", [])
    if len(items) != 2:
        return False
    for item in items:
        folder = into / ("config" if item["kind"] == "ConfigMap" else "credentials")
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            key: value.encode() if item["kind"] == "ConfigMap" else base64.b64decode(value)
            for key, value in (item.get("data") or {}).items()
        }
        for key, data in files.items():
            path = folder / key
            if not path.exists() or path.read_bytes() != data:
                tmp = folder / f".{key}.tmp"
                tmp.write_bytes(data)
                tmp.replace(path)
        for stale in folder.iterdir():
            if not stale.name.startswith(".") and stale.name not in files:
                stale.unlink()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after the first answer")
    parser.add_argument(
        "--mode",
        choices=["auto", "node", "process"],
        default=os.environ.get("AIGUILLAGE_DEV_MODE", "auto"),
        help="node: on the local node; process: operator and sidecar as local processes; "
        "auto (default): the node where this machine can run one",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AIGUILLAGE_DEV_PORT", 4000)),
        help="the sidecar's port in process mode",
    )
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.mode != "process":
        reasons = node_unavailable()
        if not reasons:
            return dev_node.run(args.once, stop, say)
        if args.mode == "node":
            say("the local node cannot run here: " + "; ".join(reasons))
            return 1
        say("the local node cannot run here: " + "; ".join(reasons))
        say("falling back to process mode (operator and sidecar as local processes)")
    return run_processes(args.once, args.port, stop)


def node_unavailable() -> list[str]:
    """Why the local node cannot run on this machine (empty when it can)."""
    reasons = preflight(find_bin_dir())
    if reasons:
        return reasons
    missing = [kind for kind in ("pause", "aiguillage", "demo") if images.built(kind) is None]
    if missing and not images.can_build():
        reasons.append(
            f"images {', '.join(missing)} not built and buildah, mmdebstrap or go is missing "
            "(`make node-deps images`)"
        )
    return reasons


def run_processes(once: bool, port: int, stop: threading.Event) -> int:
    """Process mode: the control plane, operator and sidecar as local processes."""
    workdir = ROOT / ".dev"
    workdir.mkdir(exist_ok=True)
    loop = LoopThread()
    sims = [
        OpenAISimulator("mistral-eu (simulated, FR)", port=18101, api_key="sk-demo-mistral"),
        OpenAISimulator("openai-us (simulated, US)", port=18102, api_key="sk-demo-openai"),
    ]
    children: list[processes.Child] = []
    plane = ControlPlane()
    try:
        say("starting etcd and kube-apiserver (built from Go modules) ...")
        plane.start()
        say(
            f"control plane ready in {plane.start_seconds:.1f}s; KUBECONFIG={plane.kubeconfig_path}"
        )
        plane.kubectl("apply", "-f", str(ROOT / "crds"))
        for crd in ("aiproviders", "airoutes"):
            plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.aiguillage.dev")
        for folder in ("platform", "teams"):  # providers before the routes naming them
            plane.kubectl("apply", "-R", "-f", str(ROOT / "examples" / folder))
        for sim in sims:
            loop.run(sim.start())
            say(f"simulated provider {sim.name} at {sim.url}")
        operator = processes.operator(plane.env(), OPERATOR_NAMESPACE, workdir / "operator.log")
        children.append(operator.start())
        say(f"operator started (log: {operator.log_path})")
        mounts = workdir / NAMESPACE
        wait_for(lambda: sync_mounts(plane, mounts), timeout=60, what="the operator's ConfigMap")
        say(f"operator wrote ConfigMap/Secret for namespace {NAMESPACE}; synced into {mounts}")
        listen = f"127.0.0.1:{port}"
        argv = processes.aiguillage(
            "sidecar", "--config-dir", str(mounts / "config"), "--listen", listen
        )
        sidecar = processes.Child(
            "sidecar",
            argv,
            {**os.environ, "POD_NAMESPACE": NAMESPACE, "POD_NAME": "dev",
             "AIGUILLAGE_AUDIT_LOG": str(workdir / "audit.jsonl")},
            workdir / "sidecar.log",
        )  # fmt: skip
        children.append(sidecar.start())
        # What this run started, so a test (or a user) can check it is all gone afterwards.
        pids = [c.proc.pid for c in children if c.proc is not None]
        pids += [p for p in (plane.etcd_pid, plane.apiserver_pid) if p]
        (workdir / "pids").write_text("".join(f"{pid}\n" for pid in pids))
        base = f"http://{listen}"
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="apps-hold-no-key", max_retries=0)
        wait_for(lambda: answers(f"{base}/readyz"), timeout=30, what="the sidecar to be ready")
        raw = client.chat.completions.with_raw_response.create(
            model="summarizer", messages=[{"role": "user", "content": "Say hello"}]
        )
        answer = raw.parse().choices[0].message.content
        h = raw.headers
        say(
            f'answer: "{answer}" — via provider {h["x-aiguillage-provider"]} '
            f"({h['x-aiguillage-location']}), attempts {h['x-aiguillage-attempts']}"
        )
        if once:
            return 0
        say(f"sidecar on {base}/v1 — try:  OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY=x ...")
        say(f"kubectl:  KUBECONFIG={plane.kubeconfig_path} {plane.bin_dir}/kubectl get air,aip -A")
        say("audit trail: .dev/audit.jsonl — press Ctrl-C to stop everything")
        while not stop.wait(1.0):
            sync_mounts(plane, mounts)
        return 0
    finally:
        say("stopping ...")
        for child in reversed(children):
            child.stop()
        for sim in sims:
            if sim.started:
                loop.run(sim.stop())
        loop.close()
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
