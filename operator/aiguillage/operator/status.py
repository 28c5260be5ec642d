"""Status conditions in the metav1.Condition shape, written only when they change.

``lastTransitionTime`` moves only when a condition's status flips, as Kubernetes
conventions require; reasons and messages may change without a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiguillage.operator.render import Condition


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    desired: Iterable[Condition], current: Iterable[Mapping[str, Any]], generation: int
) -> list[dict[str, Any]]:
    old = {c.get("type"): c for c in current}
    out = []
    for cond in desired:
        status = "True" if cond.status else "False"
        previous = old.get(cond.type)
        changed = previous is None or previous.get("status") != status
        out.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "observedGeneration": generation,
                "lastTransitionTime": now()
                if changed
                else previous.get("lastTransitionTime") or now(),  # type: ignore[union-attr]
            }
        )
    return out


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal for writing purposes (everything the operator sets)."""
    return {k: a.get(k) for k in b} == dict(b)


def flip(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]], type_: str = "Ready"
) -> str | None:
    """The new status of condition ``type_`` if it changed, else None."""
    old = next((c.get("status") for c in before if c.get("type") == type_), None)
    new = next((c.get("status") for c in after if c.get("type") == type_), None)
    return new if new != old else None
