"""On a real API server: the operator gives each namespace it serves an audit signing key and
publishes its public key; a sidecar signing with the mounted key writes a trail that
``aiguillage audit verify`` accepts with the ConfigMap saved by kubectl, and that names the
namespace whose key signed it."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.cli import main
from aiguillage.devtools.waiting import wait_for
from aiguillage.operator.auditkeys import (
    PUBLIC_KEYS_CONFIG_MAP,
    SIGNING_KEY_FILE,
    SIGNING_SECRET,
)
from aiguillage.sidecar.auditchain import ChainSettings
from aiguillage.sidecar.main import Sidecar
from tests.e2e.conftest import Cluster, wait_until_primed
from tests.e2e.manifests import is_ready, provider, route, secret

pytestmark = pytest.mark.e2e


def test_signing_keys_made_by_the_operator_verify_a_sidecar_trail(
    cluster: Cluster,
    kube_namespace: str,
    eu_us: Any,
    loop_thread: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    eu, _ = eu_us
    op_ns = cluster.operator_namespace
    cluster.apply(
        secret("eu-key", op_ns, "sk-eu-test"),
        provider(f"{op_ns}-eu", eu.url + "/v1", "FR", "eu-key", op_ns),
        route("chat", kube_namespace, "chat", f"{op_ns}-eu"),
    )
    wait_for(lambda: is_ready(cluster, "chat", kube_namespace), timeout=30, what="route Ready")
    signing = wait_for(
        lambda: cluster.get("secret", SIGNING_SECRET, kube_namespace), timeout=30, what="the key"
    )
    keys = wait_for(
        lambda: cluster.get("configmap", PUBLIC_KEYS_CONFIG_MAP, op_ns), timeout=30, what="keys"
    )
    # Other tests' namespaces (the operator is shared by the session) have keys there too.
    (name,) = [n for n in keys["data"] if n.startswith(f"{kube_namespace}.")]
    assert "PRIVATE" not in str(keys)  # only public keys are published

    # The pod's mount, as the injection makes it.
    key_file = tmp_path / "audit-key" / SIGNING_KEY_FILE
    key_file.parent.mkdir()
    key_file.write_bytes(base64.b64decode(signing["data"][SIGNING_KEY_FILE]))
    cluster.rendered(kube_namespace, tmp_path)
    monkeypatch.setenv("POD_NAMESPACE", kube_namespace)
    sidecar = Sidecar(
        tmp_path / "config",
        tmp_path / "credentials",
        str(tmp_path / "audit.jsonl"),
        audit_chain=ChainSettings(str(key_file), every_records=2),
    )
    loop_thread.run(sidecar.start("127.0.0.1:0"))
    try:
        client = openai.OpenAI(base_url=sidecar.url + "/v1", api_key="none", max_retries=0)
        for _ in range(3):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        loop_thread.run(sidecar.stop())

    saved = tmp_path / "audit-keys.yaml"
    saved.write_text(
        cluster.plane.kubectl(
            "get", "configmap", PUBLIC_KEYS_CONFIG_MAP, "-n", op_ns, "-o", "yaml"
        ).stdout
    )
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key", str(saved)])
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    assert "3 record(s), 2 checkpoint(s), sealed to the end, stopped cleanly" in out

    # A restarted operator keeps the key (old trails still verify, new pods sign alike) and
    # publishes it again if the ConfigMap went away.
    cluster.operator.stop()
    cluster.plane.kubectl("delete", "configmap", PUBLIC_KEYS_CONFIG_MAP, "-n", op_ns)
    cluster.operator.start()
    wait_until_primed(cluster.operator)
    again = wait_for(
        lambda: cluster.get("configmap", PUBLIC_KEYS_CONFIG_MAP, op_ns), timeout=30, what="keys"
    )
    assert [n for n in again["data"] if n.startswith(f"{kube_namespace}.")] == [name]
    assert cluster.get("secret", SIGNING_SECRET, kube_namespace)["data"] == signing["data"]  # type: ignore[index]
