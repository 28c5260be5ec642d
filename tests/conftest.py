"""Fixtures shared by the whole test suite.

``control_plane`` is one real etcd + kube-apiserver for the test session (see
`aiguillage.devtools.controlplane`); ``kube_namespace`` gives each test its own namespace in it.

``node`` is the local single-node cluster (`aiguillage.devtools.node.Node`: kubelet, containerd,
kube-proxy... on this machine), started on first use with the images of the working tree
(built first if stale) and stopped at the end of the session. Tests using it carry the markers
``e2e`` and ``node``. ``node_session`` lets a test stop the session's node (to start its own).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiguillage.devtools import images
from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.node import Node, preflight
from aiguillage.devtools.node.lifecycle import find_bin_dir

# tests/compat drives agent frameworks that only its own venv has (`make test-compat` builds
# .venv-compat from constraints-compat.txt); the project's venv does not collect it.
collect_ignore = [] if importlib.util.find_spec("langchain_openai") else ["compat"]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A started local control plane, shared by the session and stopped at its end."""
    with ControlPlane() as plane:
        yield plane


@pytest.fixture
def kube_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh, uniquely named namespace, deleted (without waiting) after the test.

    With no controller-manager the namespace then stays ``Terminating``; nothing reuses its name.
    """
    name = f"test-{uuid.uuid4().hex[:12]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


NODE_IMAGES = ("pause", "aiguillage", "demo")


class NodeSession:
    """The session's node: started by the first test that needs it, stopped at the end."""

    timings: dict[str, float] = {}

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._node: Node | None = None

    def get(self) -> Node:
        if self._node is None:
            self.require_node_support()
            built = [images.ensure(kind) for kind in NODE_IMAGES]
            node = Node(images=[i for i in built if i.kind != "pause"], log_dir=self.log_dir)
            node.start()
            self._node = node
            NodeSession.timings.update(node.timings)
        return self._node

    def stop(self) -> list[str]:
        """Stop the session's node, if started; return what its teardown left."""
        if self._node is None:
            return []
        node, self._node = self._node, None
        left = node.stop()
        NodeSession.timings["stop"] = node.timings.get("stop", 0.0)
        return left

    @staticmethod
    def require_node_support() -> None:
        """Skip where a node cannot exist at all; fail (with the fix) where it merely lacks
        something `make node-deps` / `make k8s` provide."""
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("the local node needs Linux and root")
        reasons = preflight(find_bin_dir())
        if reasons:
            pytest.fail("the local node cannot start: " + "; ".join(reasons), pytrace=False)


@pytest.fixture(scope="session")
def node_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSession]:
    session = NodeSession(tmp_path_factory.mktemp("node-logs"))
    yield session
    left = session.stop()
    assert not left, f"the node's teardown left: {left}"


@pytest.fixture
def node(node_session: NodeSession) -> Node:
    """The started local node (kubelet, containerd, kube-proxy...) shared by the session."""
    return node_session.get()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a node of their own (marker ``own_node``) run before the others, so
    that the session's node starts once, after them, instead of being stopped and restarted."""
    items.sort(key=lambda item: item.get_closest_marker("own_node") is None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = NodeSession.timings
    if timings:
        parts = [f"{name} {seconds:.1f}s" for name, seconds in sorted(timings.items())]
        terminalreporter.write_line(f"local node timings: {', '.join(parts)}")
