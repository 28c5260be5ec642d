"""``aiguillage render`` and ``explain`` as a user runs them: files in, files or lines out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def aiguillage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from aiguillage.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_render_writes_what_the_sidecar_mounts(tmp_path: Path) -> None:
    result = aiguillage("render", "-f", str(EXAMPLES), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "config" / "config.json").read_text())
    assert set(config["routes"]) == {"summarizer", "sovereign-chat"}
    assert config["namespace"] == "support"
    # Keys go to credential files only, never into the config.
    assert (tmp_path / "credentials" / "mistral-eu").read_text() == "sk-demo-mistral"
    assert "sk-demo" not in (tmp_path / "config" / "config.json").read_text()
    assert (tmp_path / "credentials" / "mistral-eu").stat().st_mode & 0o077 == 0


def test_render_is_deterministic(tmp_path: Path) -> None:
    a = aiguillage("render", "-f", str(EXAMPLES))
    b = aiguillage("render", "-f", str(EXAMPLES))
    assert a.returncode == 0
    assert a.stdout == b.stdout


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_manifest_gives_one_line_per_problem(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {name: chat, namespace: apps}
spec:
  model: chat
  strategy: fastest
  targets:
  - {provider: mistral-eu, model: m, weight: -1}
""",
    )
    result = aiguillage("render", "-f", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"error: {bad}: AIRoute apps/chat: spec.strategy: " in lines[0]
    assert "'priority', 'weighted', 'cost' or 'latency'" in lines[0]
    assert lines[1].startswith(f"error: {bad}: AIRoute apps/chat: spec.targets[0].weight: ")
    assert "greater than or equal to 0" in lines[1]
    assert len(lines) == 2


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = _write(tmp_path, "broken.yaml", "kind: AIRoute\nmetadata: {name: x\nspec: [\n")
    result = aiguillage("render", "-f", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}: line ")
    assert "invalid YAML" in result.stderr


def test_route_naming_a_missing_provider_is_an_error_offline(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        "extra.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {name: broken, namespace: support}
spec:
  model: broken
  targets: [{provider: nowhere, model: m}]
""",
    )
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(extra))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: AIRoute support/broken: spec.targets[0]: provider "nowhere" does not exist'
    )


def test_explain_orders_targets_and_names_exclusions(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        "eu-only.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {name: eu-only, namespace: support}
spec:
  model: eu-only
  residency: {locations: [EU]}
  targets:
  - {provider: openai-us, model: gpt-4o-mini}
  - {provider: mistral-eu, model: mistral-small-latest, priority: 1}
""",
    )
    result = aiguillage(
        "explain", "-f", str(EXAMPLES), "-f", str(extra), "-n", "support", "-m", "eu-only"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. mistral-eu/mistral-small-latest" in out
    assert "2." not in out
    assert (
        'spec.targets[0]: provider "openai-us" is located in US, outside residency.locations [EU]'
        in out
    )


@pytest.mark.parametrize("model", ["summarizer"])
def test_explain_priority_tiers(model: str) -> None:
    result = aiguillage("explain", "-f", str(EXAMPLES), "-n", "support", "-m", model)
    assert result.returncode == 0
    first = result.stdout.index("1. mistral-eu/")
    second = result.stdout.index("2. openai-us/")
    assert first < second
