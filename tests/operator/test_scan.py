"""``aiguillage scan``: requests of every client API and plain text, masked values, actions
for a target, the transformed request, exit codes for CI."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from aiguillage import cli
from aiguillage.operator import scan

EMAIL, IBAN = "jean.dupont@example.fr", "FR82 1390 9960 3082 4628 1948 219"

POLICY = """
apiVersion: aiguillage.dev/v1alpha1
kind: AIPolicy
metadata: {name: eu-data}
spec:
  dataProtection:
    rules:
    - {categories: [email, iban], action: audit}
    - categories: [email]
      action: pseudonymise
      when: {notJurisdictions: [EU]}
    - categories: [iban]
      action: block
      when: {notJurisdictions: [EU]}
      source: AIPolicy eu-data
"""


def run(tmp_path: Path, content: str | bytes, *args: str) -> tuple[int, str, str]:
    source = tmp_path / "input"
    source.write_bytes(content.encode() if isinstance(content, str) else content)
    options = {"rules_file": None, "api": None, "show_values": False, "apply": False,
               "location": None, "jurisdiction": None}  # fmt: skip
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag == "--rules":
            rules = tmp_path / "rules.yaml"
            rules.write_text(rest.pop(0))
            options["rules_file"] = rules
        elif flag in ("--api", "--location", "--jurisdiction"):
            options[flag[2:]] = rest.pop(0)
        else:
            options[flag[2:].replace("-", "_")] = True
    out, err = io.StringIO(), io.StringIO()
    code = scan.run(str(source), out=out, err=err, **options)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def chat(text: str) -> str:
    return orjson.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).decode()


def test_findings_are_listed_masked_with_field_and_offsets(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, chat(f"Mail {EMAIL} or pay {IBAN}"))
    assert code == 1
    assert "input: OpenAI chat completions request" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("messages[0]")]
    assert lines == [
        ["messages[0].content", "5-27", "email", "email", "audit", "j…r"],
        ["messages[0].content", "35-68", "iban", "iban", "audit", "F…9"],
    ]
    assert EMAIL not in out
    assert "1390" not in out
    _, shown, _ = run(tmp_path, chat(f"Mail {EMAIL}"), "--show-values")
    assert EMAIL in shown


def test_plain_text_without_personal_data_exits_zero(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "A letter about the weather in Lyon, 23 degrees.\n")
    assert code == 0
    assert "input: plain text" in out
    assert "no personal data found" in out


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({"model": "m", "system": "hi", "messages": [{"role": "user", "content": EMAIL}]},
         "Anthropic Messages request"),
        ({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": EMAIL}]}]},
         "Anthropic Messages request"),
        ({"model": "m", "instructions": "x", "input": EMAIL}, "OpenAI Responses request"),
        ({"model": "m", "input": [{"role": "user", "content": EMAIL}]}, "OpenAI Responses request"),
        ({"model": "m", "prompt": EMAIL}, "OpenAI completions request"),
        ({"model": "m", "input": [EMAIL]}, "OpenAI embeddings request"),
    ],
)  # fmt: skip
def test_the_api_of_a_request_is_recognised(
    tmp_path: Path, body: dict[str, object], description: str
) -> None:
    code, out, _ = run(tmp_path, orjson.dumps(body))
    assert code == 1
    assert f"input: {description}" in out
    assert "email" in out


def test_rules_show_the_action_for_the_target_and_the_request_it_gets(tmp_path: Path) -> None:
    body = chat(f"Mail {EMAIL}")
    code, out, _ = run(tmp_path, body, "--rules", POLICY, "--jurisdiction", "US", "--apply")
    assert code == 1
    assert "target: location unknown, jurisdiction US" in out
    assert "pseudonymise" in out
    sent = orjson.loads(out[out.index("{") :])
    assert sent["messages"][0]["content"] == "Mail [EMAIL_1]"
    _, out, _ = run(tmp_path, body, "--rules", POLICY, "--jurisdiction", "FR", "--apply")
    assert orjson.loads(out[out.index("{") :])["messages"][0]["content"] == f"Mail {EMAIL}"


def test_a_blocked_request_says_so_without_the_value(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, chat(f"Pay {IBAN}"), "--rules", POLICY, "--jurisdiction", "US")
    assert code == 1
    assert "blocked: the request contains personal data (iban)" in out
    assert "AIPolicy eu-data" in out
    assert "1390" not in out


def test_plain_text_apply_prints_the_text(tmp_path: Path) -> None:
    rules = "rules: [{categories: [email], action: redact}]"
    code, out, _ = run(tmp_path, f"write to {EMAIL}", "--rules", rules, "--apply", "--api", "text")
    assert code == 1
    assert out.rstrip().endswith("write to [EMAIL_1]")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"messages": [', (), "looks like JSON but does not parse"),
        ('{"model": "m"}', (), "not a request of a known API"),
        ("[1, 2]", ("--api", "chat"), "a JSON request must be an object"),
        (b"\xff\xfe", (), "not UTF-8 text"),
        ("hi", ("--rules", "rules: [{categories: [emial], action: audit}]"),
         "rules.yaml: rules[0].categories[0]: unknown category 'emial'"),
        ("hi", ("--rules", POLICY.replace("action: audit", "action: erase")),
         "rules.yaml: spec.dataProtection.rules.0.action: Input should be"),
        ("hi", ("--rules", "rules: [unclosed"), "rules.yaml: not valid YAML"),
        ("hi", ("--rules", "- a list"), "expected a mapping of data-protection rules"),
    ],
)  # fmt: skip
def test_bad_input_exits_two_with_a_reason(
    tmp_path: Path, content: str | bytes, args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(tmp_path, content, *args)
    assert code == 2
    assert message in err
    assert out == ""


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text(chat(f"Mail {EMAIL}"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["scan", str(request), "--target-jurisdiction", "US", "--show-values"])
    assert exited.value.code == 1
    assert EMAIL in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        cli.main(["scan", str(tmp_path / "missing.json")])
    assert exited.value.code == 2
    assert "missing.json: cannot read: No such file or directory" in capsys.readouterr().err
