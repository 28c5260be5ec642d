"""What the benchmark installs outside the project: the Portkey peer needs Node >= 18 and
says how to get it; its package versions are pinned by the committed lock file."""

from __future__ import annotations

import json

import pytest

from aiguillage.devtools.bench import tools


def test_portkey_without_node_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install nodejs npm"):
        tools.ensure_portkey()


def test_portkey_refuses_a_node_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(tools, "node_version", lambda node: "v16.20.2")
    with pytest.raises(RuntimeError, match=r"needs Node >= 18, found v16\.20\.2"):
        tools.ensure_portkey()


def test_the_lock_file_pins_the_gateway_and_the_server_adapter_that_streams() -> None:
    manifest = json.loads((tools.PORTKEY_SRC / "package.json").read_text())
    lock = json.loads((tools.PORTKEY_SRC / "package-lock.json").read_text())
    assert manifest["dependencies"] == {tools.PORTKEY_PACKAGE: "1.15.2"}
    packages = lock["packages"]
    assert packages[f"node_modules/{tools.PORTKEY_PACKAGE}"]["version"] == "1.15.2"
    # 1.14.2 and later answer streamed completions with 500 (TypeError: immutable)
    assert manifest["overrides"]["@hono/node-server"] == "1.14.1"
    assert packages["node_modules/@hono/node-server"]["version"] == "1.14.1"
