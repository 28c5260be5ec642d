"""The product on the local node, as a platform team installs it: the chart with the locally
built image, the examples, and the demo app (the official openai SDK, nothing of Aiguillage)
in a Deployment labelled for injection. Its pod gets the sidecar from the operator's webhook
and answers through it; the first provider failing moves it to the second; a route change
reaches it while it runs; the operator can go away and come back.

Tests run in file order: the last ones take the operator down.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aiguillage import cli
from aiguillage.devtools import demo, dev_node, images
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import Node
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NS = dev_node.NAMESPACE  # "support": labelled for injection, restricted Pod Security
OPERATOR_NS = dev_node.OPERATOR_NAMESPACE
OPERATOR_PODS = "app.kubernetes.io/component=operator"
MODELS = ["summarizer", "sovereign-chat"]


@dataclass
class Product:
    node: Node
    sims: dict[str, OpenAISimulator]
    demo_image: str

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.node.kubectl(*args, "-o", "json").stdout)

    def demo_pod(self) -> dict[str, Any]:
        pods = self.kubectl_json("get", "pods", "-n", NS, "-l", f"app={demo.APP_NAME}")
        running = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        assert len(running) == 1, [p["metadata"]["name"] for p in running]
        return dict(running[0])

    def ask_from_the_app(self, model: str) -> dict[str, Any]:
        """One request from inside the running app container, as the app makes them."""
        pod = self.demo_pod()["metadata"]["name"]
        program = (
            "import json, sys; sys.path.insert(0, '/opt/demo'); import demo_app, openai; "
            "c = openai.OpenAI(max_retries=0, timeout=30); "
            f"print(json.dumps(demo_app.ask(c, {model!r})))"
        )
        out = self.node.kubectl(
            "exec",
            "-n",
            NS,
            pod,
            "-c",
            "app",
            "--",
            "/opt/demo/bin/python",
            "-c",
            program,
            check=False,
        )
        return dict(json.loads(out.stdout)) if out.returncode == 0 else {"error": out.stderr}

    def apply_route(self, model: str, provider: str, provider_model: str) -> None:
        """``kubectl apply`` a route ``model`` in the demo's namespace with one target."""
        route = {
            "apiVersion": "aiguillage.dev/v1alpha1",
            "kind": "AIRoute",
            "metadata": {"name": model, "namespace": NS},
            "spec": {"model": model, "targets": [{"provider": provider, "model": provider_model}]},
        }
        self.node.kubectl("apply", "-f", "-", input=json.dumps(route))

    def latest_answer(self, model: str) -> dict[str, Any] | None:
        found = [a for a in demo.answers(self.node, NS) if a.get("model") == model]
        return found[-1] if found else None


def wait_namespace_gone(node: Node, name: str) -> None:
    wait_for(
        lambda: node.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=180,
        interval=1,
        what=f"namespace {name} to be gone",
    )


@pytest.fixture(scope="module")
def product(node_session: Any) -> Iterator[Product]:
    node: Node = node_session.get()
    image = images.built("aiguillage")
    demo_image = images.built("demo")
    assert image is not None
    assert demo_image is not None
    for leftover in (OPERATOR_NS, NS):  # another module's teardown may still be deleting it
        wait_namespace_gone(node, leftover)
    loop = LoopThread()
    sims: dict[str, OpenAISimulator] = {}
    try:
        sims, endpoints = dev_node.start_simulators(node, loop)
        dev_node.install_chart(node, image, "--wait", "--timeout", "240s")
        dev_node.apply_examples(node, endpoints)
        deployment = demo.demo_deployment(NS, demo_image.name, models=MODELS, interval=1)
        demo.deploy(node, deployment)
        demo.wait_for_answers(node, NS, MODELS, timeout=240)
        yield Product(node, sims, demo_image.name)
    finally:
        node.kubectl("delete", "deployment", demo.APP_NAME, "-n", NS, "--ignore-not-found",
                     check=False)  # fmt: skip
        node.helm("uninstall", dev_node.RELEASE, "--namespace", OPERATOR_NS, "--wait")
        examples = dev_node.example_documents()
        cluster_wide = [d for d in examples if d["kind"] in ("AIProvider", "AIPolicy")]
        node.kubectl("delete", "--ignore-not-found", "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List",
                                       "items": cluster_wide}), check=False)  # fmt: skip
        for namespace in (NS, OPERATOR_NS, dev_node.SIMULATOR_NAMESPACE):
            node.kubectl("delete", "namespace", namespace, "--ignore-not-found", check=False,
                         timeout=240)  # fmt: skip
        for sim in sims.values():
            if sim.started:
                loop.run(sim.stop())
        loop.close()


def test_the_operator_runs_as_two_ready_replicas_one_of_them_leading(product: Product) -> None:
    deployment = product.kubectl_json("get", "deployment", "aiguillage", "-n", OPERATOR_NS)
    assert deployment["status"]["readyReplicas"] == 2
    pods = product.kubectl_json("get", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_PODS)
    names = {p["metadata"]["name"] for p in pods["items"]}
    lease = product.kubectl_json("get", "lease", "aiguillage", "-n", OPERATOR_NS)
    holder = lease["spec"]["holderIdentity"]
    assert holder.rsplit("_", 1)[0] in names


def test_the_demo_pod_runs_the_injected_native_sidecar_and_gets_answers(
    product: Product,
) -> None:
    pod = product.demo_pod()
    sidecar = pod["spec"]["initContainers"][0]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("aiguillage-sidecar", "Always")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]
    status = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert status["aiguillage-sidecar"]["ready"] is True
    assert status["aiguillage-sidecar"]["started"] is True
    assert pod["status"]["phase"] == "Running"
    # The namespace enforces the restricted Pod Security Standard: the pod was admitted.
    labels = product.kubectl_json("get", "namespace", NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    answer = product.latest_answer("summarizer")
    assert answer is not None
    assert (answer["provider"], answer["location"]) == ("mistral-eu", "FR")
    assert answer["answer"].startswith("Hello from mistral-eu (simulated, FR)")


def test_the_sidecar_signs_its_audit_trail_with_its_namespaces_key(
    product: Product, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = product.demo_pod()["metadata"]["name"]

    def sidecar_log() -> str:
        return product.node.kubectl("logs", "-n", NS, pod, "-c", "aiguillage-sidecar").stdout

    # A checkpoint every minute (the sidecar's default), signed with the key the operator
    # made for the namespace and the injection mounted.
    wait_for(
        lambda: any(
            '"kind":"checkpoint"' in line and '"sig":null' not in line
            for line in sidecar_log().splitlines()
        ),
        timeout=150,
        interval=2,
        what="a signed checkpoint in the sidecar's audit trail",
    )
    trail = tmp_path / "sidecar.log"
    trail.write_text(sidecar_log())
    public_keys = tmp_path / "audit-keys.yaml"
    public_keys.write_text(
        product.node.kubectl(
            "get", "configmap", "aiguillage-audit-keys", "-n", OPERATOR_NS, "-o", "yaml"
        ).stdout
    )
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "verify", str(trail), "--public-key", str(public_keys)])
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    assert f" {NS}/{pod}/" in out
    # Intact up to its last checkpoint; what came after is not sealed yet (a warning only).
    assert "HOLDS: " in out
    assert ", 0 broken" in out


def test_from_outside_the_pod_only_health_and_metrics_answer(product: Product) -> None:
    # What the kubelet and Prometheus (the chart's PodMonitor, port aig-health) reach on the
    # pod IP; the API, which spends the namespace's provider keys, stays on the pod's loopback.
    pod_ip = product.demo_pod()["status"]["podIP"]

    def get(port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{pod_ip}:{port}{path}", timeout=10) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    status, metrics = get(4001, "/metrics")
    assert status == 200
    assert 'aiguillage_requests_total{route="summarizer",outcome="ok"}' in metrics
    assert get(4001, "/readyz")[0] == 200
    assert get(4001, "/v1/models")[0] == 404
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{pod_ip}:4000/v1/models", timeout=10)


def test_an_unlabelled_pod_is_untouched(product: Product) -> None:
    plain = f"plain-{uuid.uuid4().hex[:6]}"
    product.node.kubectl("create", "namespace", plain)
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "plain", "namespace": plain},
            "spec": {
                "containers": [{"name": "app", "image": product.demo_image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", "import time; time.sleep(600)"]}],
            },
        }  # fmt: skip
        product.node.kubectl("apply", "-f", "-", input=json.dumps(pod))
        stored = product.kubectl_json("get", "pod", "plain", "-n", plain)
        assert "initContainers" not in stored["spec"]
        assert "env" not in stored["spec"]["containers"][0]
        assert "aiguillage.dev/injected" not in stored["metadata"].get("labels", {})
    finally:
        product.node.kubectl("delete", "namespace", plain, "--wait=false", check=False)


def test_the_first_provider_failing_the_next_request_goes_to_the_second(
    product: Product,
) -> None:
    eu = product.sims["mistral-eu"]
    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
    try:
        answer = wait_for(
            lambda: (
                (a := product.ask_from_the_app("summarizer")).get("provider") == "openai-us" and a
            ),
            timeout=60,
            interval=1,
            what="an answer from the second target",
        )
        assert int(answer["attempts"]) > 1  # the EU target was tried first (and retried)
        assert answer["answer"].startswith("Hello from openai-us (simulated, US)")
        # The sovereign route has no second target outside the EU: it fails rather than leave.
        sovereign = product.ask_from_the_app("sovereign-chat")
        assert "provider" not in sovereign
        assert sovereign.get("status") == 502
    finally:
        eu.clear_faults()
    # Its circuit breaker let the EU target rest; once it has, the EU serves again.
    wait_for(
        lambda: product.ask_from_the_app("summarizer").get("provider") == "mistral-eu",
        timeout=120,
        interval=2,
        what="the first target to serve again after its cooldown",
    )


def test_a_route_change_is_served_by_the_running_pod_within_seconds(product: Product) -> None:
    pod_before = product.demo_pod()["metadata"]["uid"]
    model = f"fresh-{uuid.uuid4().hex[:6]}"
    applied = time.monotonic()
    product.apply_route(model, "openai-us", "gpt-4o-mini")

    # The kubelet's own refresh of mounted ConfigMaps takes a minute or more (70-90 s measured
    # here): served within 30 s is the operator's propagation at work.
    answer = wait_for(
        lambda: (a := product.ask_from_the_app(model)).get("provider") and a,
        timeout=30,
        interval=0.5,
        what=f"the running pod to serve the new model {model}",
    )
    took = time.monotonic() - applied
    assert answer["provider"] == "openai-us"
    pod = product.demo_pod()
    assert pod["metadata"]["uid"] == pod_before  # the same pod, not a restarted one
    cm = product.kubectl_json("get", "configmap", "aiguillage-config", "-n", NS)
    outputs = "aiguillage.dev/outputs-hash"
    assert pod["metadata"]["annotations"][outputs] == cm["metadata"]["annotations"][outputs]
    print(f"route applied -> served by the running pod in {took:.1f}s")


def test_with_the_operator_gone_pods_keep_serving_and_it_converges_when_back(
    product: Product,
) -> None:
    node = product.node
    node.kubectl("delete", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_PODS, "--wait=false")
    # While the Deployment brings new operator pods up, the app keeps getting answers.
    answer = product.ask_from_the_app("summarizer")
    assert answer.get("provider") == "mistral-eu", answer
    node.kubectl("rollout", "status", "deployment/aiguillage", "-n", OPERATOR_NS,
                 "--timeout=240s", timeout=260)  # fmt: skip
    model = f"after-{uuid.uuid4().hex[:6]}"
    product.apply_route(model, "mistral-eu", "mistral-small-latest")
    wait_for(
        lambda: product.ask_from_the_app(model).get("provider") == "mistral-eu",
        timeout=60,
        interval=1,
        what="the new operator to render and propagate a route",
    )


def test_with_no_operator_replica_only_opted_in_pods_wait(product: Product) -> None:
    node = product.node
    node.kubectl("scale", "deployment/aiguillage", "-n", OPERATOR_NS, "--replicas=0")
    try:
        wait_for(
            lambda: (
                not product.kubectl_json("get", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_PODS)[
                    "items"
                ]
            ),
            timeout=120,
            interval=1,
            what="no operator pod left",
        )
        opted_in: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"late-{uuid.uuid4().hex[:6]}", "namespace": NS},
            "spec": {"containers": [{"name": "app", "image": product.demo_image,
                                     "imagePullPolicy": "Never",
                                     "securityContext": demo.RESTRICTED}]},
        }  # fmt: skip
        service = "https://aiguillage-webhook.aiguillage-system.svc:443/inject"

        def refused_at_once() -> str | None:
            """Every try is refused; once kube-proxy has seen the Service's endpoints go (it may
            still send a try to a deleted pod's address, which times out), at once."""
            refused = node.kubectl("apply", "-f", "-", input=json.dumps(opted_in), check=False)
            assert refused.returncode != 0, "an opted-in pod was created without its sidecar"
            assert 'failed calling webhook "namespace.inject.aiguillage.dev"' in refused.stderr
            assert f'Post "{service}?timeout=10s"' in refused.stderr
            return refused.stderr if "connection refused" in refused.stderr else None

        wait_for(refused_at_once, timeout=120, interval=1, what="refusals without waiting")
        # Running pods do not notice: the sidecar needs no operator.
        assert product.ask_from_the_app("summarizer").get("provider") == "mistral-eu"
    finally:
        node.kubectl("scale", "deployment/aiguillage", "-n", OPERATOR_NS, "--replicas=2")
        node.kubectl("rollout", "status", "deployment/aiguillage", "-n", OPERATOR_NS,
                     "--timeout=240s", timeout=260)  # fmt: skip
    created = wait_for(
        lambda: node.kubectl("apply", "-f", "-", input=json.dumps(opted_in),
                             check=False).returncode == 0,
        timeout=60,
        interval=1,
        what="the opted-in pod to be admitted once the operator is back",
    )  # fmt: skip
    assert created
    stored = product.kubectl_json("get", "pod", opted_in["metadata"]["name"], "-n", NS)
    assert stored["spec"]["initContainers"][0]["name"] == "aiguillage-sidecar"
