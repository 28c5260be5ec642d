"""``aiguillage render`` and ``explain`` as a user runs them: files in, files or lines out."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- hostile manifests -------------------------------------------------------------------------

PROVIDER = """\
apiVersion: aiguillage.dev/v1alpha1
kind: AIProvider
metadata: {{name: "{name}"}}
spec:
  api: openai
  endpoint: https://x.example/v1
  auth: {{apiKey: {{secretRef: {{name: k, key: apiKey}}}}}}
  models: [{{name: m}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: k, namespace: aiguillage-system}}
stringData: {{apiKey: sk-x}}
---
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {{name: r, namespace: apps}}
spec:
  model: r
  targets: [{{provider: "{name}", model: m}}]
"""


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "x" * 300])
def test_render_never_writes_outside_out(tmp_path: Path, name: str) -> None:
    manifests = _write(tmp_path, "m.yaml", PROVIDER.format(name=name))
    out = tmp_path / "deep" / "out"
    before = files_under(tmp_path)

    result = aiguillage("render", "-f", str(manifests), "--out", str(out))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: {manifests}#1: AIProvider: metadata.name: must " in result.stderr
    assert files_under(tmp_path) == before  # nothing written anywhere


def test_write_refuses_a_credential_name_that_escapes(tmp_path: Path) -> None:
    from aiguillage.operator.commands import write
    from aiguillage.operator.inventory import Inventory
    from aiguillage.operator.render import render_namespace

    rendered = render_namespace(Inventory(), "apps")
    rendered.credentials["../evil"] = b"sk-x"
    with pytest.raises(ValueError, match=r"refusing to write credential file '\.\./evil'"):
        write(rendered, tmp_path / "out")
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "out" / "evil").exists()


def test_duplicate_routes_fail_the_render(tmp_path: Path) -> None:
    route = (
        "apiVersion: aiguillage.dev/v1alpha1\nkind: AIRoute\n"
        "metadata: {name: sovereign-chat, namespace: support}\n"
        "spec: {model: sovereign-chat, targets: [{provider: openai-us, model: gpt-4o-mini}]}\n"
    )
    dup = _write(tmp_path, "override.yaml", route)
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(dup))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {dup}: AIRoute support/sovereign-chat: metadata.name: is also defined in "
        f"{EXAMPLES / 'teams' / 'support' / 'routes.yaml'}#2: each object may be defined once"
    )


def test_render_reports_what_the_webhook_refuses_in_providers(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "providers.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIProvider
metadata: {name: bedrock-paris}
spec:
  api: bedrock
  endpoint: https://bedrock-runtime.us-east-1.amazonaws.com
  residency: {location: FR, jurisdiction: US}
  auth: {none: {}}
  models: [{name: mistral.mistral-large-2402-v1:0}]
---
apiVersion: aiguillage.dev/v1alpha1
kind: AIProvider
metadata: {name: bedrock-typo}
spec:
  api: bedrock
  endpoint: https://bedrock-runtime.eu-west-3.amazonaws.com
  auth: {none: {}}
  options: {regoin: eu-west-3}
  models: [{name: mistral.mistral-large-2402-v1:0}]
""",
    )
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f'error: {bad}#1: AIProvider bedrock-paris: spec.residency.location: "FR" contradicts '
        "where the endpoint processes data: its endpoint is in AWS region us-east-1, which is US",
        f"error: {bad}#2: AIProvider bedrock-typo: spec.options.regoin: is not an option of api "
        "bedrock (it takes: region, inferenceProfileLocation)",
    ]


def test_render_reports_routes_left_out_for_size(tmp_path: Path) -> None:
    models = "\n".join(f"  - {{name: m{i}}}" for i in range(64))
    targets = "\n".join(f"  - {{provider: p, model: m{i}}}" for i in range(64))
    docs = [
        "apiVersion: aiguillage.dev/v1alpha1\nkind: AIProvider\nmetadata: {name: p}\nspec:\n"
        "  api: openai\n  endpoint: https://p.example/v1\n  auth: {none: {}}\n  models:\n" + models
    ]
    docs += [
        f"apiVersion: aiguillage.dev/v1alpha1\nkind: AIRoute\n"
        f"metadata: {{name: r{i:03d}, namespace: apps, "
        f"creationTimestamp: '2026-01-01T00:00:{i:02d}Z'}}\n"
        f"spec:\n  model: r{i:03d}\n  targets:\n{targets}"
        for i in range(90)
    ]
    big = _write(tmp_path, "big.yaml", "\n---\n".join(docs))
    result = aiguillage("render", "-f", str(big), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines
    assert all(
        line.startswith("error: AIRoute apps/r0") and "over the 983040-byte limit" in line
        for line in lines
    ), lines
    assert lines[-1].startswith("error: AIRoute apps/r089: not served: ")
    assert not (tmp_path / "out").exists()  # nothing written when a problem is reported


# -- render over hostile YAML (property test) ----------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["../../x", "a/b", "x\x00y", "EU", "US", "openai", "bedrock", "m", "p"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["name", "spec", "kind"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)
_OBJECTS = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["aiguillage.dev/v1alpha1", "v1", "x"]),
        "kind": st.sampled_from(["AIProvider", "AIRoute", "Secret", "Namespace", "List", "Pod"]),
        "metadata": st.one_of(
            _VALUES,
            st.fixed_dictionaries(
                {"name": _SCALARS | _VALUES, "namespace": _SCALARS, "labels": _VALUES}
            ),
        ),
    },
    optional={"spec": _VALUES, "data": _VALUES, "stringData": _VALUES, "items": _VALUES},
)
_YAMLISH = st.text(
    alphabet=st.sampled_from(list("[]{}:,-&*!|>'\"#\n\t  abc0\x00\xff<")), max_size=200
)


def _render_in_process(text: bytes, root: Path) -> tuple[int, str]:
    import contextlib
    import io

    from aiguillage.operator.commands import render

    manifest = root / "in" / "m.yaml"
    manifest.parent.mkdir()
    manifest.write_bytes(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = render([manifest], "apps", root / "out", "aiguillage-system")
    return code, err.getvalue()


def _check_render(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        code, err = _render_in_process(text, root)  # an exception fails the test
        assert code in (0, 1)
        written = {p for p in root.rglob("*") if p.is_file()}
        assert all(
            p.is_relative_to(root / "out") or p == root / "in" / "m.yaml" for p in written
        ), written
        if code == 1:
            lines = err.splitlines()
            assert lines
            assert all(line.startswith("error: ") for line in lines), err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OBJECTS, min_size=1, max_size=4))
def test_render_on_hostile_objects(docs: list[Any]) -> None:
    _check_render(yaml.safe_dump_all(docs).encode())


@settings(max_examples=150, deadline=None)
@given(_YAMLISH)
def test_render_on_hostile_text(text: str) -> None:
    _check_render(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_render_on_mutated_examples(data: st.DataObject) -> None:
    text = b"\n---\n".join(
        (EXAMPLES / n).read_bytes()
        for n in ("platform/secrets.yaml", "platform/providers.yaml", "teams/support/routes.yaml")
    )
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(
            st.binary(max_size=6) | st.sampled_from([b"*a", b"&a ", b"\n  - ", b"["])
        )
        text = text[:at] + insert + text[at + cut :]
    _check_render(text.replace(b"support", b"apps"))


POLICIES = Path(__file__).resolve().parents[2] / "docs" / "policies"


def test_render_applies_policies_and_names_the_one_that_forbids(tmp_path: Path) -> None:
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(POLICIES), "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'error: AIRoute support/summarizer: spec.targets[1]: provider "openai-us" is located in '
        "US, outside AIPolicy eu-only residency.locations [EU]",
    ]
    assert not (tmp_path / "config").exists()  # nothing is written on error


def test_render_warns_of_what_an_audit_policy_would_forbid() -> None:
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(POLICIES / "watch-us.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        'warning: AIRoute support/summarizer: spec.targets[1]: provider "openai-us" is under '
        "jurisdiction US, outside AIPolicy watch-us residency.jurisdictions [EU] (Audit mode: "
        "served, recorded)"
    ]
    config = json.loads(result.stdout)
    us = config["routes"]["summarizer"]["targets"][1]
    assert us["provider"] == "openai-us"
    assert us["policyAudit"][0]["policy"] == "watch-us"


def test_explain_shows_what_policies_impose() -> None:
    result = aiguillage(
        "explain", "-f", str(EXAMPLES), "-f", str(POLICIES), "-n", "support", "-m", "summarizer"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:9] == [
        "  residency: locations [EU]",
        "  policies: eu-only (Enforce), team-budgets (Enforce), watch-us (Audit)",
        "  limits: 500 EUR/month per namespace (AIPolicy eu-only); 120 req/min, 200000 "
        "tokens/min per workload (AIPolicy eu-only); 500 EUR/month per namespace (AIPolicy "
        "team-budgets); 600 req/min per workload (AIPolicy team-budgets); 50 EUR/month per "
        "route (AIPolicy watch-us, Audit mode)",
        "  data protection: block iban, national_id, payment_card; pseudonymise email, phone "
        "(notJurisdictions [EU])",
        "  shared store: redis://redis.aiguillage-system.svc:6379/0 (AIPolicy eu-only; months "
        "in Europe/Paris)",
        "  tried in this order:",
        "    1. mistral-eu/mistral-small-latest (tier 0, weight 1; location FR, jurisdiction FR)",
    ]
    assert (
        '    - spec.targets[1]: provider "openai-us" is located in US, outside AIPolicy eu-only '
        "residency.locations [EU]" in result.stdout
    )


def test_render_refuses_a_policy_the_sidecar_could_not_apply(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad-policy.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIPolicy
metadata: {name: bad}
spec:
  namespaceSelector: {matchLabels: {team: nobody}}
  dataProtection:
    patterns: [{name: staff, regex: "EMP-(["}]
    rules: [{categories: [staff, passport], action: block}]
  sharedStore: {url: "redis://r:6379/0", timeZone: Mars/Olympus}
""",
    )
    result = aiguillage("render", "-f", str(EXAMPLES), "-f", str(bad))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"error: {bad}: AIPolicy bad: spec.dataProtection.patterns[0].regex: "
    )
    assert lines[1] == (
        f"error: {bad}: AIPolicy bad: spec.sharedStore.timeZone: 'Mars/Olympus' is not an IANA "
        "time zone such as Europe/Paris"
    )


def test_render_copies_the_store_password_beside_the_provider_keys(tmp_path: Path) -> None:
    eu_only = (POLICIES / "eu-only.yaml").read_text()
    redis = POLICIES / "redis-secret.yaml"
    policy = _write(tmp_path, "eu-only.yaml", eu_only)
    out = tmp_path / "out"
    route = _write(
        tmp_path,
        "eu-route.yaml",
        """
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {name: eu, namespace: support}
spec:
  model: eu
  targets: [{provider: mistral-eu, model: mistral-small-latest}]
""",
    )
    platform = EXAMPLES / "platform"
    files = [platform / "providers.yaml", platform / "secrets.yaml", redis, policy, route]
    ns = _write(tmp_path, "ns.yaml", "apiVersion: v1\nkind: Namespace\n"
                "metadata: {name: support, labels: {data: customer}}\n")  # fmt: skip
    args = [a for f in [*files, ns] for a in ("-f", str(f))]
    result = aiguillage("render", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "credentials" / "shared_store").read_text() == "change-me"
    config = json.loads((out / "config" / "config.json").read_text())
    assert config["sharedStore"]["credential"] == "shared_store"
    assert "change-me" not in (out / "config" / "config.json").read_text()
