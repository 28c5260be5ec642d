"""``python -m aiguillage.devtools.bench.propagation``: how fast a route change applied with
``kubectl`` is served by a pod that is already running, on the local node.

It starts the node with the working tree's images, installs the chart, applies ``examples/``
and runs the demo app (its pod gets the sidecar by injection), then changes the route
``summarizer`` ``--changes`` times. For each change it times, from ``kubectl apply``
returning: the operator writing the namespace's ConfigMap (its ``config-hash`` annotation
changes), the operator annotating the running pod (config propagation), and the pod's sidecar
serving the new config (its ``/readyz``, on the pod IP, reports the new hash). Then it turns
propagation off (``operator.propagationPerSecond=0``) and times ``--baseline`` changes again:
that is how long the kubelet's own periodic refresh of mounted ConfigMaps takes.

It writes its table between the ``node-propagation`` markers of ``docs/benchmarks.md`` (which
``make bench`` keeps), or prints it with ``--print``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiguillage.devtools import demo, dev_node, images
from aiguillage.devtools.bench.report import NODE_PROPAGATION
from aiguillage.devtools.docs import write_between_markers
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import Node
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for

ROOT = Path(__file__).resolve().parents[4]
DOC = ROOT / "docs" / "benchmarks.md"
NS = dev_node.NAMESPACE
HASH = "aiguillage.dev/config-hash"
OUTPUTS = "aiguillage.dev/outputs-hash"
HEALTH_PORT = 4001
POLL = 0.05


def say(text: str) -> None:
    print(f"[propagation] {text}", file=sys.stderr, flush=True)


def _annotation(node: Node, path: str, key: str) -> str | None:
    obj = node.api_get(path) or {}
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


def _served_hash(pod_ip: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:{HEALTH_PORT}/readyz", timeout=1) as r:
            text = r.read().decode().strip()
    except OSError:
        return None
    return text.split()[-1] if text.startswith("ok") else None


def _when(probe: Callable[[], bool], began: float, timeout: float) -> float:
    deadline = began + timeout
    while time.monotonic() < deadline:
        if probe():
            return time.monotonic() - began
        time.sleep(POLL)
    raise TimeoutError(f"not within {timeout:.0f}s")


def measure_change(node: Node, pod: str, pod_ip: str, total: int, timeout: float) -> dict[str, Any]:
    """Change the route once; seconds from `kubectl apply` returning to each stage."""
    cm_path = f"/api/v1/namespaces/{NS}/configmaps/aiguillage-config"
    pod_path = f"/api/v1/namespaces/{NS}/pods/{pod}"
    before = _annotation(node, cm_path, HASH)
    patch = {"spec": {"timeouts": {"total": f"{total}s"}}}
    node.kubectl("patch", "airoute", "summarizer", "-n", NS, "--type=merge",
                 "-p", json.dumps(patch))  # fmt: skip
    began = time.monotonic()
    written = _when(lambda: _annotation(node, cm_path, HASH) not in (None, before), began, 60)
    new_hash = _annotation(node, cm_path, HASH)
    outputs = _annotation(node, cm_path, OUTPUTS)
    try:
        told: float | None = _when(
            lambda: _annotation(node, pod_path, OUTPUTS) == outputs, began, 10
        )
    except TimeoutError:
        told = None  # propagation is off
    served = _when(lambda: _served_hash(pod_ip) == new_hash, began, timeout)
    return {"configmap_s": written, "pod_annotated_s": told, "served_s": served}


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"p50": statistics.median(ordered), "p95": p95, "max": ordered[-1], "n": len(values)}


def run(changes: int, baseline: int) -> dict[str, Any]:
    built = {kind: images.ensure(kind) for kind in ("pause", "aiguillage", "demo")}
    node = Node(images=[built["aiguillage"], built["demo"]], log_dir=ROOT / ".dev" / "bench-node")
    loop = LoopThread()
    sims: dict[str, OpenAISimulator] = {}
    try:
        node.start()
        sims, endpoints = dev_node.start_simulators(node, loop, say)
        dev_node.install_chart(node, built["aiguillage"], "--wait", "--timeout", "240s")
        dev_node.apply_examples(node, endpoints)
        demo.deploy(node, demo.demo_deployment(NS, built["demo"].name, models=["summarizer"],
                                               interval=60))  # fmt: skip
        demo.wait_for_answers(node, NS, ["summarizer"], timeout=240)
        pods = json.loads(node.kubectl("get", "pods", "-n", NS, "-l", f"app={demo.APP_NAME}",
                                       "-o", "json").stdout)["items"]  # fmt: skip
        pod, pod_ip = pods[0]["metadata"]["name"], pods[0]["status"]["podIP"]
        say(f"demo pod {pod} at {pod_ip}; {changes} changes with propagation")
        samples = []
        for i in range(changes):
            samples.append(measure_change(node, pod, pod_ip, 121 + i, timeout=60))
            say(f"change {i + 1}: {samples[-1]}")
        node.helm("upgrade", dev_node.RELEASE, str(ROOT / "charts" / "aiguillage"),
                  "--namespace", dev_node.OPERATOR_NAMESPACE, "--reuse-values",
                  "--set", "operator.propagationPerSecond=0", "--wait")  # fmt: skip
        wait_for(
            lambda: "config propagation is off" in node.kubectl(
                "logs", "-n", dev_node.OPERATOR_NAMESPACE, "deployment/aiguillage",
                check=False).stdout,
            timeout=120, interval=1, what="the operator restarted without propagation",
        )  # fmt: skip
        off = []
        for i in range(baseline):
            off.append(measure_change(node, pod, pod_ip, 200 + i, timeout=240))
            say(f"baseline change {i + 1}: {off[-1]}")
        return {"with": samples, "without": off}
    finally:
        for sim in sims.values():
            if sim.started:
                loop.run(sim.stop())
        loop.close()
        left = node.stop()
        if left:
            say(f"the node's teardown left: {left}")


def markdown(results: dict[str, Any]) -> str:
    def row(label: str, values: list[float]) -> str:
        s = _stats(values)
        return f"| {label} | {s['p50']:.2f} s | {s['p95']:.2f} s | {s['max']:.2f} s | {s['n']} |"

    on, off = results["with"], results["without"]
    lines = [
        "Generated by `python -m aiguillage.devtools.bench.propagation` on "
        f"{time.strftime('%Y-%m-%d')}: "
        "the local node (kubelet, containerd), the chart with two operator replicas, the demo "
        "pod's sidecar injected; each change patches the route `summarizer` with `kubectl` and "
        "is timed from `kubectl` returning until the running pod's sidecar reports the new "
        "config hash on `/readyz`.",
        "",
        "| From `kubectl patch` returning to… | p50 | p95 | max | n |",
        "|---|---|---|---|---|",
        row("the operator's ConfigMap written", [s["configmap_s"] for s in on]),
        row(
            "the running pod annotated (propagation)",
            [s["pod_annotated_s"] for s in on if s["pod_annotated_s"] is not None],
        ),
        row("**the running pod serving it**", [s["served_s"] for s in on]),
    ]
    if off:
        lines.append(
            row(
                "… with propagation off (`operator.propagationPerSecond=0`): served",
                [s["served_s"] for s in off],
            )
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--baseline", type=int, default=3, help="changes with propagation off")
    p.add_argument("--print", action="store_true", help="print instead of writing the doc")
    args = p.parse_args(argv)
    results = run(args.changes, args.baseline)
    (ROOT / ".dev").mkdir(exist_ok=True)
    (ROOT / ".dev" / "propagation.json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    if args.print:
        print(text)
    else:
        write_between_markers(DOC, NODE_PROPAGATION, text)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
