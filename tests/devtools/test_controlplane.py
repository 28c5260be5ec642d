"""End-to-end tests of the local control plane (real etcd and kube-apiserver)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path

import pytest

from aiguillage.devtools.controlplane import K8S_VERSION, ControlPlane, ControlPlaneError

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of the processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_server_version_is_the_pinned_one(control_plane: ControlPlane) -> None:
    assert K8S_VERSION == "v1.35.4"
    version = json.loads(control_plane.kubectl("version", "--output=json").stdout)
    assert version["serverVersion"]["gitVersion"] == K8S_VERSION
    assert version["clientVersion"]["gitVersion"] == K8S_VERSION


def test_configmap_round_trip(control_plane: ControlPlane, kube_namespace: str) -> None:
    control_plane.kubectl(
        "create", "configmap", "greeting", "--from-literal=hello=bonjour", "-n", kube_namespace
    )
    got = json.loads(
        control_plane.kubectl(
            "get", "configmap", "greeting", "-n", kube_namespace, "-o=json"
        ).stdout
    )
    assert got["data"] == {"hello": "bonjour"}


def test_kubeconfig_from_env_works_for_child_processes(control_plane: ControlPlane) -> None:
    result = subprocess.run(
        ["kubectl", "get", "namespace", "default", "-o=name"],
        env=control_plane.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "namespace/default"


def test_rbac_refuses_users_without_rights(control_plane: ControlPlane) -> None:
    refused = control_plane.kubectl(
        "auth", "can-i", "create", "configmaps", "--as=nobody", check=False
    )
    assert (refused.returncode, refused.stdout.strip()) == (1, "no")
    admin = control_plane.kubectl("auth", "can-i", "create", "configmaps")
    assert admin.stdout.strip() == "yes"

    # No client certificate: anonymous (or unauthenticated) is refused too.
    url = control_plane.server_url.removeprefix("https://")
    conn = http.client.HTTPSConnection(url, context=control_plane.ssl_context(client_cert=False))
    try:
        conn.request("GET", "/api/v1/namespaces/default/configmaps")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status in (401, 403)


def test_restart_apiserver_keeps_data() -> None:
    # A private control plane: restarting the session's would disturb other tests' watches.
    with ControlPlane() as plane:
        plane.kubectl("create", "configmap", "survivor", "--from-literal=k=v", "-n", "default")
        etcd_pid, apiserver_pid = plane.etcd_pid, plane.apiserver_pid
        assert apiserver_pid is not None
        server_url = plane.server_url

        plane.restart_apiserver()

        assert plane.etcd_pid == etcd_pid
        assert plane.apiserver_pid not in (None, apiserver_pid)
        assert not _alive(apiserver_pid)
        assert plane.server_url == server_url
        got = json.loads(plane.kubectl("get", "configmap", "survivor", "-o=json").stdout)
        assert got["data"] == {"k": "v"}


def test_stop_leaves_no_process_behind() -> None:
    plane = ControlPlane()
    plane.start()
    pids = [plane.etcd_pid, plane.apiserver_pid]
    workdir = plane.workdir
    assert None not in pids
    assert all(_alive(pid) for pid in pids if pid is not None)
    assert len(_processes_mentioning(str(workdir))) == 2

    plane.stop()

    assert not any(_alive(pid) for pid in pids if pid is not None)
    assert _processes_mentioning(str(workdir)) == []
    assert not workdir.exists()
    plane.stop()  # idempotent


def test_failed_start_reports_the_log_and_cleans_up() -> None:
    plane = ControlPlane(extra_apiserver_args=["--no-such-flag=1"])
    with pytest.raises(ControlPlaneError, match="no-such-flag") as raised:
        plane.start()
    assert "log tail" in str(raised.value)
    assert plane.etcd_pid is None
    assert plane.apiserver_pid is None
    with pytest.raises(ControlPlaneError, match="not started"):
        _ = plane.workdir
