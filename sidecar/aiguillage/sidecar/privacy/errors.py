"""Errors of the data-protection engine.

    SidecarError                     (aiguillage.sidecar.errors)
    └── PrivacyError
        ├── RulesError               rules that cannot be compiled (e.g. a phone region
        │                            phonenumbers does not know); the config is rejected
        └── PersonalDataBlocked      a ``block`` rule forbids sending this request to this
                                     target: not an upstream failure, nothing was sent

No message here ever contains a detected value: only categories, counts and where the
target is.
"""

from __future__ import annotations

from aiguillage.sidecar.errors import SidecarError
from aiguillage.sidecar.privacy.findings import FindingsSummary


class PrivacyError(SidecarError):
    """Base of the data-protection engine's errors."""


class RulesError(PrivacyError):
    """Data-protection rules that cannot be compiled; the message names the field."""


class PersonalDataBlocked(PrivacyError):
    """The request holds personal data that a ``block`` rule keeps from this target.

    The request path answers 400 in the client's API shape with :attr:`message` (categories,
    never values), or first tries the next target, whose rules may allow it: the action
    depends on the target, so this is decided per attempt, like residency. ``summary``
    counts what was found, for the audit record.
    """

    def __init__(
        self,
        categories: list[str],
        location: str | None,
        jurisdiction: str | None,
        sources: list[str],
        summary: FindingsSummary,
    ) -> None:
        self.categories = categories
        self.location = location
        self.jurisdiction = jurisdiction
        self.sources = sources
        self.summary = summary
        names = ", ".join(categories)
        where = f"location {location or 'unknown'}, jurisdiction {jurisdiction or 'unknown'}"
        by = f" ({'; '.join(sources)})" if sources else ""
        super().__init__(
            f"the request contains personal data ({names}) that the data-protection rules"
            f"{by} do not allow to send to a target in {where}; remove it or ask for a "
            "route whose targets may receive it"
        )
