"""What the benchmark installs outside the project: the Portkey peer needs Node >= 18 and
says how to get it; its package versions are pinned by the committed lock file; without Go the
Python simulator is the upstream, and the report's note says why."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_without_go_the_python_simulator_is_the_upstream_and_the_note_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIGUILLAGE_CACHE", str(tmp_path))  # no cached build to reuse
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    program = tools.build_upstream()
    assert program.kind == "python"
    assert program.argv[1:] == ["-m", "aiguillage.devtools.simulators", "--kind", "openai"]
    assert "Python OpenAI simulator" in program.note
    assert "no Go toolchain" in program.note


def test_a_go_build_that_fails_says_what_go_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIGUILLAGE_CACHE", str(tmp_path / "cache"))
    if tools.go_version() is None:
        pytest.skip("no Go toolchain")
    source = tmp_path / "src"
    source.mkdir()
    (source / "go.mod").write_text("module example.com/broken\n\ngo 1.22\n")
    (source / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    built = tools.build_go(source, "broken")
    assert isinstance(built, str)
    assert "go build" in built
    assert "undefined" in built
