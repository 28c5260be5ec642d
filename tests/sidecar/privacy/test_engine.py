"""The engine per request and per attempt: actions decided by the target, the original body
never modified, placeholders stable across attempts, refusals that name no value."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from aiguillage.sidecar.privacy.errors import PersonalDataBlocked

from .conftest import engine

EMAIL, PHONE, IBAN = (
    "jean.dupont@example.fr",
    "+33 6 12 34 56 78",
    "FR82 1390 9960 3082 4628 1948 219",
)

OUTSIDE_EU = engine(
    {
        "rules": [
            {"categories": ["email", "phone", "iban"], "action": "audit"},
            {"categories": ["email", "phone"], "action": "pseudonymise",
             "when": {"notJurisdictions": ["EU"]}},
            {"categories": ["iban"], "action": "block", "when": {"notJurisdictions": ["EU"]},
             "source": "AIPolicy eu-only-banking"},
        ]
    }
)  # fmt: skip


def chat(*contents: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


def test_each_attempt_gets_the_action_of_its_target_from_the_same_original() -> None:
    body = chat(f"Mail {EMAIL} or call {PHONE}.", f"Again: {EMAIL}")
    before = copy.deepcopy(body)
    scan = OUTSIDE_EU.scan("chat.completions", body)

    eu = scan.apply(location="FR", jurisdiction="FR")
    assert eu.body is body
    assert eu.restorer is None
    assert eu.summary.as_audit_dict() == {"email": {"audit": 2}, "phone": {"audit": 1}}

    us = scan.apply(location="US", jurisdiction="US")
    assert us.body["messages"][0]["content"] == "Mail [EMAIL_1] or call [PHONE_1]."
    assert us.body["messages"][1]["content"] == "Again: [EMAIL_1]"  # same value, same placeholder
    assert us.summary.as_audit_dict() == {
        "email": {"pseudonymise": 2},
        "phone": {"pseudonymise": 1},
    }
    assert us.restorer is not None
    assert us.restorer.originals == {"[EMAIL_1]": EMAIL, "[PHONE_1]": PHONE}

    again = scan.apply(location="US", jurisdiction="US")
    assert again.body == us.body  # a retry sends the same placeholders
    assert body == before  # the original request is never modified


def test_block_refuses_naming_categories_and_rules_never_values() -> None:
    body = chat(f"Pay to {IBAN}, mail {EMAIL}")
    scan = OUTSIDE_EU.scan("chat.completions", body)
    with pytest.raises(PersonalDataBlocked) as refused:
        scan.apply(location="US", jurisdiction="US")
    err = refused.value
    assert err.categories == ["iban"]
    assert "iban" in str(err)
    assert "AIPolicy eu-only-banking" in str(err)
    assert "jurisdiction US" in str(err)
    assert IBAN not in str(err)
    assert "1390" not in str(err)
    assert EMAIL not in str(err)
    assert err.summary.as_audit_dict() == {"email": {"pseudonymise": 1}, "iban": {"block": 1}}
    # The EU target of the next attempt may receive it.
    assert scan.apply(location="DE", jurisdiction="DE").body is body


def test_redacted_values_are_not_put_back() -> None:
    redact = engine({"rules": [{"categories": ["email"], "action": "redact"},
                               {"categories": ["phone"], "action": "pseudonymise"}]})  # fmt: skip
    protected = redact.apply(
        "chat.completions", chat(f"{EMAIL} {PHONE}"), location="FR", jurisdiction="FR"
    )
    assert protected.body["messages"][0]["content"] == "[EMAIL_1] [PHONE_1]"
    assert protected.restorer is not None
    assert protected.restorer.originals == {"[PHONE_1]": PHONE}
    answer = b'{"choices":[{"index":0,"message":{"content":"[EMAIL_1] [PHONE_1]"}}]}'
    assert orjson.loads(protected.restorer.body(answer))["choices"][0]["message"]["content"] == (
        f"[EMAIL_1] {PHONE}"
    )


def test_categories_no_rule_names_are_not_touched() -> None:
    only_email = engine({"rules": [{"categories": ["email"], "action": "redact"}]})
    protected = only_email.apply(
        "chat.completions", chat(f"{IBAN} {EMAIL}"), location=None, jurisdiction=None
    )
    assert protected.body["messages"][0]["content"] == f"{IBAN} [EMAIL_1]"


def test_anthropic_tool_use_and_tool_results() -> None:
    body = {
        "model": "m",
        "system": f"You help {EMAIL}",
        "messages": [
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "send",
                 "input": {"to": [EMAIL], "n": 3}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": f"sent to {PHONE}"}]},
        ],
    }  # fmt: skip
    protected = OUTSIDE_EU.apply("messages", body, location="US", jurisdiction="US")
    out = protected.body
    assert out["system"] == "You help [EMAIL_1]"
    assert out["messages"][0]["content"][0]["input"] == {"to": ["[EMAIL_1]"], "n": 3}
    assert out["messages"][1]["content"][0]["content"] == "sent to [PHONE_1]"


def test_responses_function_call_arguments_stay_json() -> None:
    body = {
        "model": "m",
        "instructions": "be brief",
        "input": [
            {"type": "function_call", "call_id": "c", "name": "mail",
             "arguments": orjson.dumps({"to": EMAIL}).decode()},
            {"type": "function_call_output", "call_id": "c", "output": f"ok, {PHONE}"},
        ],
    }  # fmt: skip
    out = OUTSIDE_EU.apply("responses", body, location="US", jurisdiction="US").body
    assert orjson.loads(out["input"][0]["arguments"]) == {"to": "[EMAIL_1]"}
    assert out["input"][1]["output"] == "ok, [PHONE_1]"


def test_a_request_without_personal_data_is_sent_as_it_is() -> None:
    body = chat("What is the capital of France?")
    protected = OUTSIDE_EU.apply("chat.completions", body, location="US", jurisdiction="US")
    assert protected.body is body
    assert not protected.summary
    assert protected.restorer is None


def test_an_unknown_operation_is_an_error() -> None:
    with pytest.raises(ValueError, match="no scanned fields are defined for operation 'audio'"):
        OUTSIDE_EU.scan("audio", {})
