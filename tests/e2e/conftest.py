"""Fixtures for end-to-end tests: CRDs on the real API server, the operator as a child
process, simulated providers and a sidecar fed from exactly what the operator wrote."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiguillage.devtools import processes
from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for
from aiguillage.sidecar.main import Sidecar

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in (
        "aiproviders.aiguillage.dev",
        "airoutes.aiguillage.dev",
        "aipolicies.aiguillage.dev",
    ):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    return control_plane


@dataclass
class Cluster:
    """The control plane seen through one operator's eyes."""

    plane: ControlPlane
    operator_namespace: str
    operator: processes.Child

    def apply(self, *docs: dict[str, Any]) -> str:
        text = yaml.safe_dump_all(docs)
        return self.plane.kubectl("apply", "-f", "-", input=text).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.plane.kubectl(*args).stdout.strip()
        return json.loads(out) if out else None

    def condition(self, kind: str, name: str, namespace: str | None, type_: str) -> dict[str, Any]:
        obj = self.get(kind, name, namespace) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def rendered(self, namespace: str, into: Path) -> dict[str, Any]:
        """Write the namespace's ConfigMap and Secret as the kubelet would mount them."""
        cm = self.get("configmap", "aiguillage-config", namespace)
        secret = self.get("secret", "aiguillage-credentials", namespace)
        assert cm is not None
        assert secret is not None
        (into / "config").mkdir(parents=True, exist_ok=True)
        (into / "credentials").mkdir(parents=True, exist_ok=True)
        for key, value in cm["data"].items():
            (into / "config" / key).write_text(value)
        for key, value in (secret.get("data") or {}).items():
            (into / "credentials" / key).write_bytes(base64.b64decode(value))
        return dict(json.loads(cm["data"]["config.json"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_operator(plane: ControlPlane, op_ns: str, log: Path, *args: str) -> processes.Child:
    child = processes.operator(plane.env(), op_ns, log, *args).start()
    wait_until_primed(child)
    return child


def wait_until_primed(child: processes.Child) -> None:
    """Wait until the child's latest start has listed the world (its log says "primed:")."""
    wait_for(
        lambda: child.output().count("primed:") >= child.starts or not child.alive,
        timeout=30,
        what="operator start-up",
    )
    assert child.alive, child.output()


@contextlib.contextmanager
def running_cluster(plane: ControlPlane, tmp_path: Path, *args: str) -> Iterator[Cluster]:
    op_ns = f"aig-op-{uuid.uuid4().hex[:8]}"
    plane.kubectl("create", "namespace", op_ns)
    child = None
    try:
        child = start_operator(plane, op_ns, tmp_path / "operator.log", *args)
        yield Cluster(plane, op_ns, child)
    finally:
        if child is not None:
            child.stop()
        # Cluster-scoped providers and policies of this test must not leak into the next one.
        plane.kubectl("delete", "aiproviders", "-l", f"test={op_ns}", "--ignore-not-found")
        plane.kubectl("delete", "aipolicies", "-l", f"test={op_ns}", "--ignore-not-found")
        plane.kubectl("delete", "namespace", op_ns, "--wait=false")


@pytest.fixture
def cluster(crds: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(crds, tmp_path) as c:
        yield c


@pytest.fixture
def spend_cluster(
    crds: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    """A cluster whose operator reads spend from the shared store every half second."""
    monkeypatch.setenv("AIGUILLAGE_SPEND_INTERVAL", "0.5")  # the operator inherits it
    with running_cluster(crds, tmp_path) as cluster:
        yield cluster


def delete_webhook_configurations(plane: ControlPlane) -> None:
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        plane.kubectl("delete", kind, "aiguillage.dev", "--ignore-not-found")


@contextlib.contextmanager
def webhook_cluster(plane: ControlPlane, tmp_path: Path, *args: str) -> Iterator[Cluster]:
    """An operator serving its webhooks on loopback, writing their configurations itself
    (``*args``: more operator arguments; with --sidecar-image, injection too)."""
    listen = f"127.0.0.1:{free_port()}"
    kinds = ["validatingwebhookconfiguration"]
    if "--sidecar-image" in args:
        kinds.append("mutatingwebhookconfiguration")
    try:
        with running_cluster(plane, tmp_path, "--webhook-listen", listen, *args) as c:
            for kind in kinds:
                wait_for(lambda k=kind: c.get(k, "aiguillage.dev"), timeout=30, what=kind)
            yield c
    finally:
        delete_webhook_configurations(plane)


@pytest.fixture
def cluster_with_webhook(crds: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:
    with webhook_cluster(crds, tmp_path) as c:
        yield c


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def eu_us(loop_thread: LoopThread) -> Iterator[tuple[OpenAISimulator, OpenAISimulator]]:
    eu = OpenAISimulator("sim-eu", api_key="sk-eu-test")
    us = OpenAISimulator("sim-us", api_key="sk-us-test")
    loop_thread.run(eu.start())
    loop_thread.run(us.start())
    yield eu, us
    loop_thread.run(eu.stop())
    loop_thread.run(us.stop())


@pytest.fixture
def start_sidecar(loop_thread: LoopThread) -> Iterator[Any]:
    started: list[Sidecar] = []

    def start(root: Path) -> Sidecar:
        sidecar = Sidecar(root / "config", root / "credentials", str(root / "audit.jsonl"), 0.05)
        loop_thread.run(sidecar.start("127.0.0.1:0"))
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        loop_thread.run(sidecar.stop())
