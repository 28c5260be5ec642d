"""Placeholders: one per value, numbered per category, never one already in the request."""

from __future__ import annotations

from aiguillage.sidecar.privacy.placeholders import Placeholders


def test_same_value_same_placeholder_and_no_collision_with_the_prompt() -> None:
    p = Placeholders(["Please keep [EMAIL_1] and [EMAIL_3] as they are", "[PHONE_1"])
    assert p.of("email", "a@b.eu") == "[EMAIL_2]"
    assert p.of("email", "c@d.eu") == "[EMAIL_4]"
    assert p.of("email", "a@b.eu") == "[EMAIL_2]"
    assert p.of("phone", "+33612345678") == "[PHONE_1]"  # "[PHONE_1" is not a placeholder
    assert p.of("national_id", "1") == "[NATIONAL_ID_1]"
