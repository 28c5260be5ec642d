"""Fixtures shared by the whole test suite.

``control_plane`` is one real etcd + kube-apiserver for the test session (see
`aiguillage.devtools.controlplane`); ``kube_namespace`` gives each test its own namespace in it.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator

import pytest

from aiguillage.devtools.controlplane import ControlPlane

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
