"""The image built from the repository's Containerfile, in pods on the local node.

One image serves both parts: the chart runs it as the operator, a pod runs it as the sidecar.
Both run as a numeric UID with no passwd entry on a read-only root filesystem, in namespaces
that enforce the ``restricted`` Pod Security Standard; the sidecar answers through an
OpenAI-compatible provider and through Bedrock (SigV4 with the trimmed botocore of the image).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aiguillage.devtools import demo, images
from aiguillage.devtools.dev_node import chart_image_values
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import Node
from aiguillage.devtools.simulators.bedrock import BedrockSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.node]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "aiguillage-system"
APPS = "image-test"
AKID, SECRET, REGION = "AKIDIMAGETEST", "image-test-secret", "eu-central-1"
BEDROCK_MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@dataclass
class Installed:
    node: Node
    image: images.ImageArchive

    def operator_exec(self, *command: str) -> Any:
        return self.node.kubectl(
            "exec", "-n", OPERATOR_NAMESPACE, "deployment/aiguillage", "--", *command, check=False
        )

    def operator_log(self) -> str:
        """The logs of every operator replica (only the one that leads renders)."""
        return str(
            self.node.kubectl(
                "logs", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/instance=aiguillage",
                "--tail=-1", check=False,
            ).stdout
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(node_session: Any) -> Iterator[Installed]:
    """The chart installed with the locally built image, its operator primed."""
    node: Node = node_session.get()
    image = images.built("aiguillage")
    assert image is not None
    node.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    node.kubectl("label", "namespace", OPERATOR_NAMESPACE,
                 *(f"{k}={v}" for k, v in RESTRICTED_NAMESPACE_LABELS.items()))  # fmt: skip
    node.helm(
        "install", "aiguillage", str(ROOT / "charts" / "aiguillage"),
        "--namespace", OPERATOR_NAMESPACE, *chart_image_values(image),
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    result = Installed(node, image)
    wait_for(lambda: "primed:" in result.operator_log(), timeout=120, what="the operator to prime")
    yield result
    node.helm("uninstall", "aiguillage", "--namespace", OPERATOR_NAMESPACE, "--wait")
    node.kubectl("delete", "namespace", OPERATOR_NAMESPACE, "--wait=false")


def test_operator_runs_under_a_uid_without_name_on_a_read_only_root(installed: Installed) -> None:
    who = installed.operator_exec(
        "python3", "-c", "import os, getpass; print(os.getuid()); getpass.getuser()"
    )
    assert who.stdout.split() == ["65532"]
    # Where kopf's default identity used to crash the operator at start.
    assert "KeyError: 'getpwuid(): uid not found: 65532'" in who.stderr
    write = installed.operator_exec("python3", "-c", "open('/opt/aiguillage/lib/x', 'w')")
    assert "Read-only file system" in write.stderr
    assert "Traceback" not in installed.operator_log()


def test_the_api_server_reaches_the_operators_webhook_in_its_pod(installed: Installed) -> None:
    node = installed.node
    node.kubectl("create", "namespace", "webhook-test")
    route = {
        "apiVersion": "aiguillage.dev/v1alpha1",
        "kind": "AIRoute",
        "metadata": {"name": "bad", "namespace": "webhook-test"},
        "spec": {"model": "bad", "targets": [{"provider": "ghost", "model": "x"}]},
    }

    def refused() -> str | None:
        result = node.kubectl("apply", "-f", "-", input=json.dumps(route), check=False)
        if result.returncode == 0:  # the webhook was not serving yet and fails open: again
            node.kubectl("delete", "airoute", "bad", "-n", "webhook-test", check=False)
            return None
        return str(result.stderr)

    stderr = wait_for(refused, timeout=60, interval=1, what="the webhook to refuse the route")
    assert 'admission webhook "airoute.aiguillage.dev" denied the request' in stderr
    assert 'provider "ghost" does not exist' in stderr


@pytest.fixture
def providers(installed: Installed) -> Iterator[dict[str, str]]:
    """An OpenAI-compatible and a Bedrock simulator on this machine, Services in the cluster."""
    node = installed.node
    loop = LoopThread()
    eu = OpenAISimulator("sim-eu", host=node.host_ip, api_key="sk-image-test")
    bedrock = BedrockSimulator(
        "sim-bedrock", host=node.host_ip, api_key=AKID, secret_key=SECRET, region=REGION
    )
    urls = {}
    try:
        for sim in (eu, bedrock):
            loop.run(sim.start())
            port = int(sim.url.rsplit(":", 1)[1])
            urls[sim.name] = node.serve_from_host("host-services", sim.name, port)
        yield urls
    finally:
        for sim in (eu, bedrock):
            if sim.started:
                loop.run(sim.stop())
        loop.close()


def manifests(urls: dict[str, str]) -> list[dict[str, Any]]:
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"namespace": OPERATOR_NAMESPACE}}  # fmt: skip
    pricing = {"inputPerMillion": "1", "outputPerMillion": "2"}
    return [
        {**secret, "metadata": {**secret["metadata"], "name": "eu-key"},
         "stringData": {"apiKey": "sk-image-test"}},
        {**secret, "metadata": {**secret["metadata"], "name": "aws"},
         "stringData": {"accessKeyId": AKID, "secretAccessKey": SECRET}},
        {"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIProvider",
         "metadata": {"name": "sim-eu"},
         "spec": {"api": "openai", "endpoint": f"{urls['sim-eu']}/v1",
                  "residency": {"location": "FR", "jurisdiction": "FR"},
                  "auth": {"apiKey": {"secretRef": {"name": "eu-key", "key": "apiKey"}}},
                  "models": [{"name": "small", "pricing": pricing}]}},
        {"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIProvider",
         "metadata": {"name": "sim-bedrock"},
         "spec": {"api": "bedrock", "endpoint": urls["sim-bedrock"],
                  "options": {"region": REGION},
                  "residency": {"location": "DE", "jurisdiction": "US"},
                  "auth": {"awsSigV4": {"secretRef": {"name": "aws"}}},
                  "models": [{"name": BEDROCK_MODEL, "pricing": pricing}]}},
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": APPS, "labels": RESTRICTED_NAMESPACE_LABELS}},
        {"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIRoute",
         "metadata": {"name": "chat-eu", "namespace": APPS},
         "spec": {"model": "chat-eu", "targets": [{"provider": "sim-eu", "model": "small"}]}},
        {"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIRoute",
         "metadata": {"name": "chat-bedrock", "namespace": APPS},
         "spec": {"model": "chat-bedrock",
                  "targets": [{"provider": "sim-bedrock", "model": BEDROCK_MODEL}]}},
    ]  # fmt: skip


def test_the_sidecar_image_answers_through_openai_and_bedrock_in_a_restricted_pod(
    installed: Installed, providers: dict[str, str]
) -> None:
    node = installed.node
    for doc in manifests(providers):
        node.kubectl("apply", "-f", "-", input=json.dumps(doc))
    wait_for(
        lambda: node.kubectl("get", "configmap", "aiguillage-config", "-n", APPS,
                             check=False).returncode == 0,
        timeout=120,
        what="the operator's ConfigMap",
    )  # fmt: skip
    demo_image = images.built("demo")
    assert demo_image is not None
    models = ["chat-eu", "chat-bedrock"]
    deployment = demo.demo_deployment(
        APPS, demo_image.name, models=models, sidecar_image=installed.image.name, interval=5
    )
    demo.deploy(node, deployment)
    try:
        got = demo.wait_for_answers(node, APPS, models, timeout=240)
    except AssertionError:
        print(node.kubectl("describe", "pods", "-n", APPS, check=False).stdout)
        print(node.kubectl("get", "events", "-n", APPS, check=False).stdout)
        raise
    assert [(a["model"], a["provider"]) for a in got] == [
        ("chat-eu", "sim-eu"),
        ("chat-bedrock", "sim-bedrock"),
    ]
    assert got[0]["answer"].startswith("Hello from sim-eu")
    assert got[1]["answer"].startswith("Hello from sim-bedrock")
    sidecar = node.kubectl(
        "exec", "-n", APPS, "deployment/demo", "-c", "aiguillage", "--",
        "python3", "-c", "import os; print(os.getuid())",
    ).stdout  # fmt: skip
    assert sidecar.split() == ["65532"]
    # Data protection works with what the image kept of phonenumbers (its numbering plans,
    # without geocoding, carrier and time-zone data) and of python-stdnum.
    scan = node.kubectl(
        "exec", "-i", "-n", APPS, "deployment/demo", "-c", "aiguillage", "--",
        "aiguillage", "scan", "--api", "text", "-",
        input="Call +33 6 12 34 56 78 or 030 1234567 about FR82 1390 9960 3082 4628 1948 219",
        check=False,
    )  # fmt: skip
    assert scan.returncode == 1, scan.stderr  # 1: personal data found
    assert "3 finding(s): iban audit: 1, phone audit: 2" in scan.stdout
