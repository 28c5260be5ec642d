"""``dataProtection`` in AIPolicy and AIRoute: the sidecar's data-protection rules, as a CRD.

The sidecar's :class:`~aiguillage.sidecar.privacy.rules.DataProtectionRules` is the model
the data plane enforces; this module mirrors it field for field (same names, same
meaning) with the descriptions and CEL rules a CRD needs, and :meth:`compile` turns a spec
into the sidecar's model, which adds the checks a schema cannot make (known categories,
RE2 syntax, unique names). ``tests/operator/api/test_dataprotection.py`` keeps the two in
step: every field of one is a field of the other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError

from aiguillage.operator.api.common import ApiModel, CountryOrGroup, Matching
from aiguillage.sidecar.privacy.rules import (
    MAX_PATTERN_LENGTH,
    MAX_TERMS,
    Action,
    DataProtectionRules,
)

Category = Annotated[
    str,
    Matching(
        r"^[a-z][a-z0-9_]{0,39}$",
        "must be a category: lower-case letters, digits and _, starting with a letter "
        "(built in: email, phone, iban, vat, national_id, payment_card, ip_address)",
        40,
    ),
]
Countries = Annotated[list[CountryOrGroup], Field(max_length=64)]


class TargetSelector(ApiModel):
    """Which targets a rule applies to, by where they process data and who operates them.
    Every condition given must hold; a target whose location or jurisdiction is unknown is
    in no set (so it matches notLocations and notJurisdictions, the stricter case)."""

    locations: Countries | None = None
    """Only targets processing data in these countries (codes, EU or EEA)."""
    not_locations: Countries | None = None
    """Only targets processing data outside these countries."""
    jurisdictions: Countries | None = None
    """Only targets operated by companies under these jurisdictions."""
    not_jurisdictions: Countries | None = None
    """Only targets operated by companies outside these jurisdictions (e.g. [EU]: every
    non-European provider)."""


class DataProtectionRule(ApiModel):
    """An action on some categories of personal data, toward the targets "when" selects."""

    categories: Annotated[list[Category], Field(min_length=1, max_length=64)]
    """Categories: built-in (email, phone, iban, vat, national_id, payment_card, ip_address)
    or defined by patterns and denyLists."""
    action: Action
    """audit (count it), pseudonymise (send a placeholder, put the original back in the
    answer), redact (send a placeholder) or block (refuse the request to that target);
    when several rules match, the strictest wins, in this order: block, redact,
    pseudonymise, audit."""
    when: TargetSelector | None = None
    """Targets the rule applies to (absent: every target)."""


class CustomPattern(ApiModel):
    """A category of your own, found by a regular expression."""

    name: Category
    """Name of the category, used in rules."""
    regex: str = Field(min_length=1, max_length=MAX_PATTERN_LENGTH)
    """Regular expression in RE2 syntax (matching time is linear whatever the pattern)."""
    case_sensitive: bool = True
    """Whether letters must match in case."""


class DenyList(ApiModel):
    """A category of your own: literal terms, matched as whole words."""

    name: Category
    """Name of the category, used in rules."""
    terms: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]],
        Field(min_length=1, max_length=MAX_TERMS),
    ]
    """The terms (e.g. project code names)."""
    case_sensitive: bool = False
    """Whether letters must match in case."""


class DataProtectionSpec(ApiModel):
    """Personal data to look for in what providers would receive, and what to do with it."""

    rules: Annotated[list[DataProtectionRule], Field(max_length=64)] = Field(default_factory=list)
    """Actions per category and target. A category no rule names is not looked for."""
    patterns: Annotated[list[CustomPattern], Field(max_length=64)] = Field(default_factory=list)
    """Categories of your own, by regular expression."""
    deny_lists: Annotated[list[DenyList], Field(max_length=64)] = Field(default_factory=list)
    """Categories of your own, by literal terms."""
    phone_regions: Countries | None = None
    """Countries whose national phone formats are recognised (absent: the EEA, Switzerland
    and the United Kingdom)."""

    def compile(self, source: str, audit_only: bool = False) -> DataProtectionRules:
        """The sidecar's rules, each naming ``source`` (e.g. "AIPolicy eu-gdpr"); raises
        ValueError saying what is wrong, with the field under dataProtection.

        ``audit_only`` (an Audit-mode policy): every action becomes audit, so what would
        have been done is recorded and nothing is changed or refused."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for rule in body["rules"]:
            rule["source"] = source
            if audit_only:
                rule["source"] += f" (Audit mode: would {rule['action']})"
                rule["action"] = Action.AUDIT.value
        try:
            return DataProtectionRules.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{where}: {message}" if where else message) from None
