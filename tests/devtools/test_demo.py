"""The demo Deployment: what an app team writes, plus, without injection, the sidecar the
operator would inject, set up so the pod passes the restricted Pod Security Standard."""

from __future__ import annotations

import json
from typing import Any

from aiguillage.devtools import demo


def test_with_injection_the_app_only_asks_for_a_sidecar() -> None:
    deployment = demo.demo_deployment("support", "demo:1", models=["summarizer"])
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"][demo.INJECT_LABEL] == "true"
    assert "initContainers" not in template["spec"]
    assert "volumes" not in template["spec"]
    [app] = template["spec"]["containers"]
    assert {"name": "DEMO_MODELS", "value": "summarizer"} in app["env"]


def test_without_injection_it_carries_a_native_sidecar_holding_the_only_mounts() -> None:
    deployment = demo.demo_deployment(
        "support", "demo:1", models=["a", "b"], sidecar_image="localhost/aiguillage:1"
    )
    spec = deployment["spec"]["template"]["spec"]
    [sidecar] = spec["initContainers"]
    [app] = spec["containers"]
    assert sidecar["restartPolicy"] == "Always"  # native sidecar: ready before the app starts
    assert sidecar["image"] == "localhost/aiguillage:1"
    assert sidecar["args"][:1] == ["sidecar"]
    assert "127.0.0.1:4000" in sidecar["args"]
    assert "startupProbe" in sidecar
    assert {m["mountPath"] for m in sidecar["volumeMounts"]} == {
        "/etc/aiguillage/config",
        "/etc/aiguillage/credentials",
    }
    assert all(m["readOnly"] for m in sidecar["volumeMounts"])
    assert "volumeMounts" not in app  # the app never sees the credentials
    # It opts out of injection: an injected second sidecar would clash with its own.
    assert deployment["spec"]["template"]["metadata"]["labels"][demo.INJECT_LABEL] == "false"
    for container in (sidecar, app):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


class FakeCluster:
    def __init__(self, logs: str) -> None:
        self.logs = logs
        self.calls: list[tuple[str, ...]] = []

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> Any:  # fmt: skip
        self.calls.append(args)

        class Result:
            stdout = self.logs

        return Result()


def test_answers_are_the_json_lines_the_app_printed() -> None:
    lines = [
        "Traceback noise",
        json.dumps({"model": "a", "answer": "hi", "provider": "p", "location": "FR"}),
        json.dumps({"model": "b", "status": 503, "error": "no compliant target"}),
        "[1, 2]",
    ]
    cluster = FakeCluster("\n".join(lines))
    got = demo.answers(cluster, "support")
    assert [a["model"] for a in got] == ["a", "b"]
    assert cluster.calls == [("logs", "deployment/demo", "-c", "app", "-n", "support")]
    assert demo.wait_for_answers(cluster, "support", ["a"], timeout=1)[0]["answer"] == "hi"
