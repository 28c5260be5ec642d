"""``make dev`` on the local node: the product as a platform team would run it, on this machine.

It starts the node (`aiguillage.devtools.node.Node`) with the images of the working tree,
``helm install``s the chart with them, applies ``examples/`` (the providers pointed at simulated
EU and US providers running on this machine, where pods reach them), deploys the demo app (an
openai-SDK program in a pod labelled for sidecar injection, `aiguillage.devtools.demo`) and
prints the answers it gets and which provider served them. It stays up for ``kubectl`` until
Ctrl-C, then tears everything down. `aiguillage.devtools.dev` chooses between this and the
process mode, which needs no node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aiguillage.devtools import demo, images
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import Node
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for

__all__ = [
    "DEMO_MODELS",
    "OPERATOR_NAMESPACE",
    "RELEASE",
    "apply_examples",
    "chart_image_values",
    "example_documents",
    "install_chart",
    "run",
    "start_simulators",
]

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "support"
OPERATOR_NAMESPACE = "aiguillage-system"
RELEASE = "aiguillage"
SIMULATOR_NAMESPACE = "simulated-providers"
DEMO_MODELS = ["summarizer", "sovereign-chat"]
# What `examples/` holds for the cluster itself (Argo CD's manifests are for Argo CD).
EXAMPLE_KINDS = ("Namespace", "Secret", "AIProvider", "AIRoute", "AIPolicy")

# The simulated providers, by the example provider each stands in for.
SIMULATED = {
    "mistral-eu": ("mistral-eu (simulated, FR)", "sk-demo-mistral"),
    "openai-us": ("openai-us (simulated, US)", "sk-demo-openai"),
}


def example_documents(endpoints: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests of ``examples/`` (every YAML file, recursively), namespaces first, with
    AIProvider endpoints replaced from ``endpoints``."""
    documents = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in EXAMPLE_KINDS:
                continue
            provider = doc["metadata"]["name"] if doc.get("kind") == "AIProvider" else None
            if endpoints and provider in endpoints:
                doc["spec"]["endpoint"] = endpoints[provider]
            documents.append(doc)
    return sorted(documents, key=lambda doc: EXAMPLE_KINDS.index(doc["kind"]))


def chart_image_values(image: images.ImageArchive) -> list[str]:
    """``--set`` arguments making the chart run ``image`` (operator and injected sidecar)."""
    return [
        "--set", f"image.repository={image.repository}",
        "--set", f"image.tag={image.tag}",
        "--set", "image.pullPolicy=Never",
    ]  # fmt: skip


def run(once: bool, stop: threading.Event, say: Callable[[str], None]) -> int:
    """Run the demo on the node until ``stop`` is set (or the first answers, with ``once``)."""
    began = time.monotonic()
    workdir = ROOT / ".dev"
    workdir.mkdir(exist_ok=True)
    built = {kind: images.ensure(kind) for kind in ("pause", "aiguillage", "demo")}
    product, demo_image = built["aiguillage"], built["demo"]
    say(f"images: {product.name}, {demo_image.name} (built from this working tree)")
    node = Node(images=[product, demo_image], log_dir=workdir / "node-logs", progress=say)
    loop = LoopThread()
    sims: dict[str, OpenAISimulator] = {}
    try:
        node.start()
        say(
            f"node Ready in {node.timings['node_ready']:.1f}s "
            f"(kubelet, containerd, kube-proxy; logs: {workdir / 'node-logs'})"
        )
        (workdir / "pids").write_text("".join(f"{pid}\n" for pid in node.pids.values()))
        sims, endpoints = start_simulators(node, loop, say)
        install_chart(node, product)
        say(f"helm install {RELEASE} charts/aiguillage (image {product.name})")
        apply_examples(node, endpoints)
        say("applied examples/ (providers pointed at the simulators)")
        injected = injection_served(node)
        deployment = demo.demo_deployment(
            NAMESPACE,
            demo_image.name,
            models=DEMO_MODELS,
            sidecar_image=None if injected else product.name,
        )
        demo.deploy(node, deployment)
        how = "injected by the operator" if injected else "declared in the Deployment"
        say(f"demo app deployed in namespace {NAMESPACE} (sidecar {how})")
        seen = 0
        for answer in demo.wait_for_answers(node, NAMESPACE, DEMO_MODELS, timeout=240):
            say(describe(answer))
            seen += 1
        say(f"first answers {time.monotonic() - began:.1f}s after `make dev` started")
        if once:
            return 0
        kubectl = f"KUBECONFIG={node.kubeconfig_path} {node.bin_dir / 'kubectl'}"
        say(f"kubectl:  {kubectl} get pods,air,aip -A")
        say(f"demo app: {kubectl} logs -n {NAMESPACE} deploy/{demo.APP_NAME} -c app -f")
        say("press Ctrl-C to stop everything")
        while not stop.wait(5.0):
            printed = [a for a in demo.answers(node, NAMESPACE)]
            for answer in printed[seen:]:
                say(describe(answer))
            seen = max(seen, len(printed))
        return 0
    finally:
        say("stopping ...")
        for sim in sims.values():
            loop.run(sim.stop())
        loop.close()
        left = node.stop()
        if "stop" in node.timings:
            verdict = "nothing left behind" if not left else f"left: {'; '.join(left)}"
            say(f"node stopped in {node.timings['stop']:.1f}s, {verdict}")


def start_simulators(
    node: Node, loop: LoopThread, say: Callable[[str], None] = lambda _: None
) -> tuple[dict[str, OpenAISimulator], dict[str, str]]:
    """The simulated EU and US providers on this machine, each behind a Service in the
    cluster; (simulator, in-cluster endpoint) by the example provider each stands in for."""
    sims: dict[str, OpenAISimulator] = {}
    endpoints = {}
    for provider, (label, key) in SIMULATED.items():
        sim = OpenAISimulator(label, host=node.host_ip, api_key=key)
        loop.run(sim.start())
        sims[provider] = sim
        port = int(sim.url.rsplit(":", 1)[1])
        url = node.serve_from_host(SIMULATOR_NAMESPACE, provider, port)
        endpoints[provider] = f"{url}/v1"
        say(f"simulated provider {label} at {sim.url}, in the cluster as {url}")
    return sims, endpoints


def install_chart(node: Node, image: images.ImageArchive, *helm_args: str) -> None:
    """``helm install`` the chart running ``image`` (more ``helm_args``: e.g. ``--wait``)."""
    node.helm(
        "install", RELEASE, str(ROOT / "charts" / "aiguillage"),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        *chart_image_values(image), *helm_args,
    )  # fmt: skip


def apply_examples(node: Node, endpoints: dict[str, str]) -> None:
    """Apply ``examples/`` (providers pointed at ``endpoints``) and wait for the operator's
    ConfigMap in namespace support."""
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(example_documents(endpoints)))
    wait_for(
        lambda: (
            node.kubectl(
                "get", "configmap", "aiguillage-config", "-n", NAMESPACE, check=False
            ).returncode
            == 0
        ),
        timeout=180,
        interval=0.5,
        what="the operator's ConfigMap in namespace support",
    )


def injection_served(node: Node) -> bool:
    """Whether the chart installed a mutating webhook (the operator injects sidecars)."""
    out = node.kubectl(
        "get", "mutatingwebhookconfigurations", "-l", f"app.kubernetes.io/instance={RELEASE}",
        "-o", "name", check=False,
    ).stdout  # fmt: skip
    return bool(out.strip())


def describe(answer: dict[str, Any]) -> str:
    """One line saying what the demo app got for one model."""
    if "answer" in answer:
        return (
            f'{answer["model"]}: "{answer["answer"]}" — via provider {answer["provider"]} '
            f"({answer['location']}), attempts {answer['attempts']}"
        )
    return f"{answer.get('model')}: error {answer.get('status', '')} {answer.get('error')}"
