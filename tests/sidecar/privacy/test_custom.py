"""The policy's own categories: RE2 patterns and deny lists."""

from __future__ import annotations

from .conftest import engine, found

CUSTOM = engine(
    {
        "patterns": [{"name": "employee_id", "regex": "EMP-[0-9]{6}"}],
        "denyLists": [{"name": "codenames", "terms": ["Bluebird", "Night Jar", "Æther"]}],
        "rules": [{"categories": ["employee_id", "codenames"], "action": "redact"}],
    }
)


def test_patterns_and_deny_lists_find_their_categories() -> None:
    text = "Émile (EMP-004211) works on project bluebird and NIGHT JAR, not Bluebirds; æther."
    assert found(text, CUSTOM) == [
        ("employee_id", "EMP-004211"),
        ("codenames", "bluebird"),
        ("codenames", "NIGHT JAR"),
        ("codenames", "æther"),
    ]


def test_deny_list_terms_match_whole_words_only() -> None:
    assert found("the bluebirds and xbluebird", CUSTOM) == []


def test_a_case_sensitive_deny_list() -> None:
    strict = engine(
        {
            "denyLists": [{"name": "names", "terms": ["Rose"], "caseSensitive": True}],
            "rules": [{"categories": ["names"], "action": "audit"}],
        }
    )
    assert found("a rose for Rose", strict) == [("names", "Rose")]


def test_a_pattern_that_backtracks_exponentially_in_python_is_linear_in_re2() -> None:
    # (a+)+$ takes Python's re longer than the age of the universe on this input.
    evil = engine(
        {
            "patterns": [{"name": "evil", "regex": "(a+)+$"}],
            "rules": [{"categories": ["evil"], "action": "audit"}],
        }
    )
    text = "a" * 100_000 + "!"
    assert found(text, evil) == []


def test_ten_thousand_deny_list_terms() -> None:
    many = engine(
        {
            "denyLists": [{"name": "clients", "terms": [f"client{i:05d}" for i in range(10_000)]}],
            "rules": [{"categories": ["clients"], "action": "audit"}],
        }
    )
    assert found("for client09999 and client10000", many) == [("clients", "client09999")]
